package index

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"cleanroom/fingerprint"
)

var update = flag.Bool("update", false, "rewrite the example in FORMAT.md")

// exampleShard is the shard FORMAT.md dissects: one small document.
func exampleShard(t *testing.T) []byte { return exampleShardBytes(t) }

func exampleShardBytes(t testing.TB) []byte {
	p := fingerprint.Params{K: 2, W: 2}
	text := "int x = 1;\nreturn x;\n"
	d := NewDoc(fingerprint.Fingerprints(p, fingerprint.C, []byte(text)))
	d.Path, d.License, d.LicenseFrom, d.Lang, d.Size = "a.c", "GPL-2.0-only", "spdx-line", "c", int64(len(text))
	var buf bytes.Buffer
	meta := ShardMeta{K: p.K, W: p.W, Tokenizer: fingerprint.TokenizerVersion, Build: "example"}
	repos := []Repo{{Name: "demo", License: "GPL-2.0-only", Confidence: 0.98}}
	if err := writeShard(&buf, meta, repos, []*Doc{d}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// describe renders a shard's structure and decoded sections, leaving out what
// depends on the zstd encoder's version (the compressed bytes and their lengths).
func describe(data []byte) (string, error) {
	c, err := parseContainer(data)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "header: magic %q, format version %d, min reader version %d\n",
		data[:8], binary.LittleEndian.Uint32(data[8:]), binary.LittleEndian.Uint32(data[12:]))
	for _, tag := range c.order {
		s := c.toc[tag]
		codec := "raw "
		if s.codec == codecZstd {
			codec = "zstd"
		}
		sec, err := c.section(tag)
		if err != nil {
			return "", err
		}
		if tag == secMeta {
			fmt.Fprintf(&b, "section %-8s %s %3d bytes: %s\n", tag, codec, s.raw, sec)
			continue
		}
		fmt.Fprintf(&b, "section %-8s %s %3d bytes: % x\n", tag, codec, s.raw, sec)
	}
	fmt.Fprintf(&b, "footer: magic %q\n", data[len(data)-8:])
	return b.String(), nil
}

var exampleRE = regexp.MustCompile("(?s)(<!-- example:begin -->\n```\n)(.*?)(```\n<!-- example:end -->)")

func TestFormatExample(t *testing.T) {
	got, err := describe(exampleShard(t))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	m := exampleRE.FindSubmatch(doc)
	if m == nil {
		t.Fatal("FORMAT.md has no example block")
	}
	if *update {
		doc = exampleRE.ReplaceAll(doc, []byte("${1}"+strings.ReplaceAll(got, "$", "$$")+"${3}"))
		if err := os.WriteFile("FORMAT.md", doc, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(m[2]) != got {
		t.Errorf("FORMAT.md's example is out of date (go test -run TestFormatExample -update):\n got:\n%s\nwant:\n%s", got, m[2])
	}
}
