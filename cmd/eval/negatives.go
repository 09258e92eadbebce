package main

import (
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"cleanroom/corpus"
	"cleanroom/fingerprint"
	"cleanroom/index"
)

// negResult is how often a set of code that must not match did.
type negResult struct {
	name            string
	files           int
	flagged         int // files with a match
	matches         int
	flaggedRename   int // files with a rename-robust match
	examples        []string
	target          string
	targetFlagged   float64 // the largest share of flagged files allowed
	skipped         string  // why the set was not scanned, if it was not
	withoutAllow    int     // files flagged with the allow set ignored
	withoutAllowSet bool
}

// evalNegatives scans the negative sets.
func evalNegatives(ctx context.Context, c *config, ix *index.Index) ([]negResult, error) {
	var out []negResult
	goSet := negResult{name: "Go's source tree, the half not in the allow set (BSD-3-Clause)", target: "<= 1 in 1,000 files", targetFlagged: 0.001, withoutAllowSet: true}
	err := scanSource(ctx, ix, filepath.Join(c.goroot, "src"), corpus.Options{}, &goSet, func(path string) bool { return !goHalf(path) })
	if err != nil {
		return nil, err
	}
	out = append(out, goSet)

	npmSet := negResult{name: "npm packages under MIT, ISC, BSD or Apache-2.0", target: "<= 1 in 1,000 files", targetFlagged: 0.001, withoutAllowSet: true}
	if err := scanNPM(ctx, c, ix, &npmSet); err != nil {
		return nil, err
	}
	out = append(out, npmSet)

	own := negResult{name: "this project's own code", target: "none", withoutAllowSet: true}
	if err := scanSource(ctx, ix, c.repo, corpus.Options{Exclude: []string{"out/**", "bin/**"}}, &own, nil); err != nil {
		return nil, err
	}
	out = append(out, own)

	boiler := negResult{name: "common boilerplate (include lists, accessors, loops, module and Lisp boilerplate, tables of numbers)", target: "none", withoutAllowSet: true}
	for _, b := range boilerplate() {
		scanText(ix, b.name, b.lang, []byte(b.text), &boiler)
	}
	out = append(out, boiler)
	return out, nil
}

// scanSource scans every served file of a source that keep accepts (nil: all).
func scanSource(ctx context.Context, ix *index.Index, spec string, opts corpus.Options, r *negResult, keep func(path string) bool) error {
	src, err := corpus.OpenSource(spec)
	if err != nil {
		return err
	}
	return corpus.Walk(ctx, src, opts, nil, nil, func(f *corpus.File) error {
		if keep == nil || keep(f.Path) {
			scanText(ix, f.Path, f.Lang, f.Data, r)
		}
		return nil
	})
}

// scanText scans one negative text, exactly and rename-robustly.
func scanText(ix *index.Index, name string, l fingerprint.Lang, text []byte, r *negResult) {
	r.files++
	s := ix.Fingerprint(l, text, true)
	m := ix.NewMatcher(index.MatchOptions{})
	m.Feed(s)
	ms := m.Matches()
	if len(ms) > 0 {
		r.flagged++
		r.matches += len(ms)
		if len(r.examples) < 3 {
			x := ms[0]
			r.examples = append(r.examples, fmt.Sprintf("%s:%d-%d ~ %s %s:%d-%d (%d tokens)", name, x.Query.StartLine, x.Query.EndLine,
				x.Source.Repo.Name, x.Source.Path, x.Src.StartLine, x.Src.EndLine, x.Tokens))
		}
	}
	if r.withoutAllowSet {
		m := ix.NewMatcher(index.MatchOptions{NoAllow: true})
		m.Feed(s)
		if len(m.Matches()) > 0 {
			r.withoutAllow++
		}
	}
	if _, ok := ix.RenameParams(); ok {
		m := ix.NewMatcher(index.MatchOptions{Rename: true})
		m.Feed(s)
		if len(m.Matches()) > 0 {
			r.flaggedRename++
		}
	}
}

// permissiveNPM are the licenses of the npm packages scanned.
var permissiveNPM = map[string]bool{"MIT": true, "ISC": true, "BSD-2-Clause": true, "BSD-3-Clause": true, "Apache-2.0": true, "0BSD": true}

// scanNPM scans the npm packages installed in c.npm whose license is permissive.
func scanNPM(ctx context.Context, c *config, ix *index.Index, r *negResult) error {
	root := filepath.Join(c.npm, "node_modules")
	entries, err := os.ReadDir(root)
	if err != nil {
		r.skipped = "the packages are not installed (make eval runs npm ci in " + c.npm + ")"
		return nil
	}
	var dirs []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "@") {
			sub, _ := os.ReadDir(filepath.Join(root, e.Name()))
			for _, s := range sub {
				dirs = append(dirs, filepath.Join(root, e.Name(), s.Name()))
			}
			continue
		}
		if !strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, filepath.Join(root, e.Name()))
		}
	}
	for _, d := range dirs {
		pj, err := os.ReadFile(filepath.Join(d, "package.json"))
		if err != nil || !permissiveNPM[jsonLicense(pj)] {
			continue
		}
		if err := scanSource(ctx, ix, d, corpus.Options{}, r, nil); err != nil {
			return err
		}
	}
	return nil
}

// A snippet is a piece of common boilerplate.
type snippet struct {
	name string
	lang fingerprint.Lang
	text string
}

// boilerplate returns common code no one owns: what a model writes every day and a
// filter must let pass.
func boilerplate() []snippet {
	var out []snippet
	add := func(name string, l fingerprint.Lang, text string) { out = append(out, snippet{name, l, text}) }
	kernelIncludes := []string{"linux/module.h", "linux/kernel.h", "linux/init.h", "linux/slab.h", "linux/platform_device.h",
		"linux/of.h", "linux/of_device.h", "linux/io.h", "linux/err.h", "linux/clk.h", "linux/interrupt.h", "linux/delay.h",
		"linux/device.h", "linux/mutex.h", "linux/spinlock.h", "linux/regmap.h"}
	libcIncludes := []string{"stdio.h", "stdlib.h", "string.h", "errno.h", "unistd.h", "fcntl.h", "sys/types.h",
		"sys/stat.h", "stdint.h", "stdbool.h", "assert.h", "limits.h"}
	for i := 0; i < 4; i++ {
		var b strings.Builder
		for _, h := range kernelIncludes[i : i+10] {
			fmt.Fprintf(&b, "#include <%s>\n", h)
		}
		add(fmt.Sprintf("kernel include list %d", i), fingerprint.C, b.String())
		b.Reset()
		for _, h := range libcIncludes[i : i+8] {
			fmt.Fprintf(&b, "#include <%s>\n", h)
		}
		add(fmt.Sprintf("libc include list %d", i), fingerprint.C, b.String())
	}
	add("GPL header and accessors", fingerprint.C, `// SPDX-License-Identifier: GPL-2.0-only
/*
 * This program is free software; you can redistribute it and/or modify it under
 * the terms of the GNU General Public License version 2 as published by the Free
 * Software Foundation.
 */
static inline u32 mydev_readl(struct mydev *dev, u32 reg)
{
	return readl(dev->base + reg);
}

static inline void mydev_writel(struct mydev *dev, u32 reg, u32 val)
{
	writel(val, dev->base + reg);
}
`)
	add("getters and setters", fingerprint.C, `int widget_get_width(const struct widget *w)
{
	return w->width;
}

void widget_set_width(struct widget *w, int width)
{
	w->width = width;
}

int widget_get_height(const struct widget *w)
{
	return w->height;
}

void widget_set_height(struct widget *w, int height)
{
	w->height = height;
}
`)
	add("lookup loop", fingerprint.C, `static const struct item *find_item(const struct item *items, size_t n, int id)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (items[i].id == id)
			return &items[i];
	}
	return NULL;
}
`)
	add("platform driver boilerplate", fingerprint.C, `static const struct of_device_id mydev_of_match[] = {
	{ .compatible = "acme,mydev" },
	{ }
};
MODULE_DEVICE_TABLE(of, mydev_of_match);

static struct platform_driver mydev_driver = {
	.probe = mydev_probe,
	.remove = mydev_remove,
	.driver = {
		.name = "mydev",
		.of_match_table = mydev_of_match,
	},
};
module_platform_driver(mydev_driver);

MODULE_AUTHOR("Jane Doe <jane@example.com>");
MODULE_DESCRIPTION("Acme mydev driver");
MODULE_LICENSE("GPL");
`)
	add("error handling ladder", fingerprint.C, `	ret = clk_prepare_enable(priv->clk);
	if (ret)
		return ret;

	ret = devm_request_irq(&pdev->dev, irq, mydev_irq, 0, dev_name(&pdev->dev), priv);
	if (ret) {
		dev_err(&pdev->dev, "failed to request irq: %d\n", ret);
		goto err_clk;
	}

	platform_set_drvdata(pdev, priv);
	return 0;

err_clk:
	clk_disable_unprepare(priv->clk);
	return ret;
`)
	add("Emacs Lisp package boilerplate", fingerprint.EmacsLisp, `;;; mytool.el --- A tool  -*- lexical-binding: t; -*-

(require 'cl-lib)
(require 'subr-x)

(defgroup mytool nil
  "Customization group for mytool."
  :group 'tools)

(defcustom mytool-enabled t
  "Whether mytool is enabled."
  :type 'boolean
  :group 'mytool)

(defvar mytool-mode-map
  (let ((map (make-sparse-keymap)))
    (define-key map (kbd "C-c C-c") #'mytool-run)
    map)
  "Keymap for mytool-mode.")

(provide 'mytool)
;;; mytool.el ends here
`)
	add("CRC-32 table", fingerprint.C, crcTable())
	add("AES S-box", fingerprint.C, aesSBox())
	rng := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 3; i++ {
		var b strings.Builder
		fmt.Fprintf(&b, "static const unsigned short table%d[] = {\n", i)
		for j := 0; j < 32; j++ {
			fmt.Fprintf(&b, "\t0x%04x, 0x%04x, 0x%04x, 0x%04x, 0x%04x, 0x%04x, 0x%04x, 0x%04x,\n",
				rng.IntN(65536), rng.IntN(65536), rng.IntN(65536), rng.IntN(65536), rng.IntN(65536), rng.IntN(65536), rng.IntN(65536), rng.IntN(65536))
		}
		b.WriteString("};\n")
		add(fmt.Sprintf("random table %d", i), fingerprint.C, b.String())
	}
	return out
}

// crcTable writes the standard CRC-32 table, as zlib and many kernels carry it.
func crcTable() string {
	var b strings.Builder
	b.WriteString("static const uint32_t crc32_table[256] = {\n")
	for n := uint32(0); n < 256; n++ {
		c := n
		for k := 0; k < 8; k++ {
			if c&1 != 0 {
				c = 0xedb88320 ^ c>>1
			} else {
				c >>= 1
			}
		}
		if n%4 == 0 {
			b.WriteString("\t")
		}
		fmt.Fprintf(&b, "0x%08xL,", c)
		if n%4 == 3 {
			b.WriteString("\n")
		} else {
			b.WriteString(" ")
		}
	}
	b.WriteString("};\n")
	return b.String()
}

// aesSBox writes AES's S-box, computed from its definition.
func aesSBox() string {
	var sbox [256]byte
	for i := 0; i < 256; i++ {
		// Multiplicative inverse in GF(2^8), then the affine map.
		inv := byte(0)
		if i != 0 {
			for j := 1; j < 256; j++ {
				if gmul(byte(i), byte(j)) == 1 {
					inv = byte(j)
					break
				}
			}
		}
		s := inv ^ bits.RotateLeft8(inv, 1) ^ bits.RotateLeft8(inv, 2) ^ bits.RotateLeft8(inv, 3) ^ bits.RotateLeft8(inv, 4) ^ 0x63
		sbox[i] = s
	}
	var b strings.Builder
	b.WriteString("static const u8 sbox[256] = {\n")
	for i, s := range sbox {
		if i%16 == 0 {
			b.WriteString("\t")
		}
		fmt.Fprintf(&b, "0x%02x,", s)
		if i%16 == 15 {
			b.WriteString("\n")
		} else {
			b.WriteString(" ")
		}
	}
	b.WriteString("};\n")
	return b.String()
}

func gmul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= 0x1b
		}
		b >>= 1
	}
	return p
}
