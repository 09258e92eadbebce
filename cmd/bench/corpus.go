package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/ulikunitz/xz"

	"cleanroom/fingerprint"
)

// A file is one source file of the kernel, in memory.
type file struct {
	name string
	lang fingerprint.Lang
	data []byte
}

// loadKernel reads the .c and .h files of the kernel archive into memory: the
// corpus of the fingerprinting figures (the "linux-6.1 .c/.h files").
func loadKernel(archive string) ([]file, int64, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var r io.Reader
	// xz(1) decompresses about twice as fast as the Go reader; use it when the
	// machine has it (make deps installs xz-utils).
	if path, err := exec.LookPath("xz"); err == nil {
		cmd := exec.Command(path, "-dc")
		cmd.Stdin = f
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, 0, err
		}
		if err := cmd.Start(); err != nil {
			return nil, 0, err
		}
		defer cmd.Wait()
		r = out
	} else {
		xr, err := xz.NewReader(f)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %v", archive, err)
		}
		r = xr
	}
	tr := tar.NewReader(r)
	var files []file
	var total int64
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %v", archive, err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		ext := filepath.Ext(h.Name)
		if ext != ".c" && ext != ".h" {
			continue
		}
		var buf bytes.Buffer
		buf.Grow(int(h.Size))
		if _, err := io.Copy(&buf, tr); err != nil {
			return nil, 0, fmt.Errorf("%s: %s: %v", archive, h.Name, err)
		}
		files = append(files, file{name: h.Name, lang: fingerprint.C, data: buf.Bytes()})
		total += h.Size
	}
	if len(files) == 0 {
		return nil, 0, fmt.Errorf("%s holds no .c or .h files", archive)
	}
	return files, total, nil
}

// kernelFile returns the file whose name ends in suffix.
func kernelFile(files []file, suffix string) (file, error) {
	for _, f := range files {
		if strings.HasSuffix(f.name, suffix) {
			return f, nil
		}
	}
	return file{}, fmt.Errorf("the kernel has no %s", suffix)
}

// goSource returns Go's own source (BSD-3-Clause, not in the kernel index): the
// clean text the gateway and holdback figures stream.
func goSource(rel string) ([]byte, error) {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return nil, fmt.Errorf("go env GOROOT: %v", err)
	}
	return os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "src", rel))
}

// excerpt returns about n tokens of text in language l, from token `from` on, as
// a markdown answer that quotes them in a fenced block.
func excerpt(l fingerprint.Lang, text []byte, from, n int) (string, error) {
	toks := fingerprint.Tokenize(l, text)
	if len(toks) < from+n+1 {
		return "", fmt.Errorf("%d tokens, want %d", len(toks), from+n+1)
	}
	// Start and end at line boundaries, as a model quotes code.
	a := bytes.LastIndexByte(text[:toks[from].Off], '\n') + 1
	b := int(toks[from+n].Off)
	if i := bytes.IndexByte(text[b:], '\n'); i >= 0 {
		b += i + 1
	}
	return "Here is the code:\n\n```" + l.String() + "\n" + string(text[a:b]) + "```\n", nil
}
