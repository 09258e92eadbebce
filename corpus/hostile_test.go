package corpus

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// hostileEntry is an archive entry of the tests below.
type hostileEntry struct {
	name string
	data []byte
	size int64 // of data when 0; else that many zero bytes
}

func (e hostileEntry) reader() (io.Reader, int64) {
	if e.size > 0 {
		return io.LimitReader(zeros{}, e.size), e.size
	}
	return bytes.NewReader(e.data), int64(len(e.data))
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// writeHostile writes entries as a .tar.gz or a .zip, names as they are.
func writeHostile(t *testing.T, path string, entries []hostileEntry) {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	if strings.HasSuffix(path, ".zip") {
		zw := zip.NewWriter(f)
		for _, e := range entries {
			w, err := zw.Create(e.name)
			must(t, err)
			r, _ := e.reader()
			_, err = io.Copy(w, r)
			must(t, err)
		}
		must(t, zw.Close())
		return
	}
	gz, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(gz)
	for _, e := range entries {
		r, n := e.reader()
		must(t, tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: n, Typeflag: tar.TypeReg}))
		_, err := io.Copy(tw, r)
		must(t, err)
	}
	must(t, tw.Close())
	must(t, gz.Close())
}

// listTree returns every path under dir.
func listTree(t *testing.T, dir string) []string {
	var out []string
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { out = append(out, p); return nil })
	sort.Strings(out)
	return out
}

// TestZipSlip: archive entries that climb out of the archive or are absolute are
// skipped and counted, the others read, and the walk writes nothing anywhere (it
// never extracts).
func TestZipSlip(t *testing.T) {
	ok := []byte("int ok(void) { return 1; }\n")
	evil := []byte("int evil(void) { return 0; }\n")
	for _, kind := range []string{"tar.gz", "zip"} {
		t.Run(kind, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "in")
			must(t, os.Mkdir(dir, 0o755))
			p := filepath.Join(dir, "slip."+kind)
			writeHostile(t, p, []hostileEntry{
				{name: "proj/ok.c", data: ok},
				{name: "../evil1.c", data: evil},
				{name: "proj/../../evil2.c", data: evil},
				{name: "/tmp/evil3.c", data: evil},
				{name: `..\evil4.c`, data: evil},
				{name: "C:/evil5.c", data: evil},
			})
			before := listTree(t, root)
			src, err := OpenSource(p)
			must(t, err)
			r := walkAll(t, src, Options{})
			if r.err != nil {
				t.Fatal(r.err)
			}
			if len(r.files) != 1 || r.files["proj/ok.c"] == nil || r.stats.Skipped[SkipUnsafePath] != 5 {
				t.Errorf("visited %d files, skipped %v; want proj/ok.c and 5 unsafe paths", len(r.files), r.stats.Skipped)
			}
			if after := listTree(t, root); strings.Join(after, "\n") != strings.Join(before, "\n") {
				t.Errorf("the walk wrote files: %v", after)
			}
			if _, err := os.Stat("/tmp/evil3.c"); err == nil {
				t.Errorf("/tmp/evil3.c exists")
			}
		})
	}
}

// TestArchiveBombs: an archive that inflates far more than source archives do ends
// the walk with ErrBomb, after a bounded amount of work; a file that inflates past
// MaxFileSize is skipped as huge; an archive of ordinary ratio is read whole.
func TestArchiveBombs(t *testing.T) {
	defer func(f int64) { bombFloor = f }(bombFloor)
	bombFloor = 2 << 20 // the default, 256 MiB, takes seconds to inflate under -race
	dir := t.TempDir()

	// One 12 MiB entry of zeros: skipped by its size, but the stream must be inflated
	// to skip it.
	tgz := filepath.Join(dir, "bomb.tar.gz")
	writeHostile(t, tgz, []hostileEntry{{name: "a.c", data: []byte("int a;\n")}, {name: "zeros.c", size: 12 << 20}, {name: "b.c", data: []byte("int b;\n")}})
	// Ten 1 MiB entries of zeros in a zip: each within MaxFileSize.
	var many []hostileEntry
	for i := range 10 {
		many = append(many, hostileEntry{name: "z/" + string(rune('a'+i%26)) + strings.Repeat("x", i/26) + ".c", size: 1 << 20})
	}
	zp := filepath.Join(dir, "bomb.zip")
	writeHostile(t, zp, many)
	for _, p := range []string{tgz, zp} {
		src, err := OpenSource(p)
		must(t, err)
		r := walkAll(t, src, Options{})
		if !errors.Is(r.err, ErrBomb) || !strings.Contains(r.err.Error(), p) {
			t.Errorf("%s: Walk error %v, want ErrBomb naming the source", filepath.Base(p), r.err)
		}
		if read := src.BytesRead(); read > 1<<20 {
			t.Errorf("%s: read %d bytes before stopping", filepath.Base(p), read)
		}
		// With the limit off, the walk reads the archive and skips what is too big.
		r = walkAll(t, src, Options{MaxRatio: -1})
		if r.err != nil {
			t.Errorf("%s with no ratio limit: %v", filepath.Base(p), r.err)
		}
	}
	// A single compressed file that inflates to 8 MiB: skipped as huge, counted.
	gzPath := filepath.Join(dir, "one.c.gz")
	f, err := os.Create(gzPath)
	must(t, err)
	gz, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	io.Copy(gz, io.LimitReader(zeros{}, 8<<20))
	gz.Close()
	f.Close()
	src, err := OpenSource(gzPath)
	must(t, err)
	r := walkAll(t, src, Options{})
	if r.err != nil || len(r.files) != 0 || r.stats.Skipped[SkipHuge] != 1 {
		t.Errorf("a gzip bomb file: err %v, %d files, skipped %v; want one huge", r.err, len(r.files), r.stats.Skipped)
	}
	// Text that inflates about 5 times, 3 MiB of it: read whole.
	var text bytes.Buffer
	for i := 0; text.Len() < 3<<20; i++ {
		text.WriteString("int f")
		text.WriteString(strings.Repeat(string(rune('a'+i%26)), 1+i%7))
		text.WriteString("(int x) { return x * 3 + 1; }\n")
	}
	var ordinary []hostileEntry
	for i, b := 0, text.Bytes(); len(b) > 0; i++ {
		n := min(len(b), 512<<10)
		ordinary = append(ordinary, hostileEntry{name: "src/f" + string(rune('a'+i)) + ".c", data: b[:n]})
		b = b[n:]
	}
	okPath := filepath.Join(dir, "ordinary.tar.gz")
	writeHostile(t, okPath, ordinary)
	src, err = OpenSource(okPath)
	must(t, err)
	if r := walkAll(t, src, Options{}); r.err != nil || len(r.files) != len(ordinary) {
		t.Errorf("an ordinary archive: err %v, %d of %d files", r.err, len(r.files), len(ordinary))
	}
}

// TestHostileTree: symlink loops, a FIFO and an unreadable file with a source
// name, a binary file with a source extension and a single-line file of 100 MB are
// skipped and counted; the walk ends and reads the rest.
func TestHostileTree(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"proj/ok.c":     "int ok(void) { return 1; }\n",
		"proj/bin.c":    "\x7fELF\x02\x01\x01\x00\x00\x00" + strings.Repeat("\x00\x01\xff", 1000),
		"proj/random.c": strings.Repeat("\xff\xfe\x80\x90", 2000),
	})
	must(t, os.Symlink("b", filepath.Join(root, "proj", "a")))
	must(t, os.Symlink("a", filepath.Join(root, "proj", "b")))
	must(t, os.Symlink(".", filepath.Join(root, "proj", "self")))
	must(t, os.Symlink("..", filepath.Join(root, "proj", "up.c")))
	must(t, syscall.Mkfifo(filepath.Join(root, "proj", "fifo.c"), 0o644))
	// 100 MB on one line, as a sparse file: no disk, no newline.
	huge := filepath.Join(root, "proj", "oneline.c")
	must(t, os.WriteFile(huge, []byte("int x = "), 0o644))
	must(t, os.Truncate(huge, 100<<20))
	src, err := OpenSource(root)
	must(t, err)
	r := walkAll(t, src, Options{})
	if r.err != nil {
		t.Fatal(r.err)
	}
	want := map[string]int64{SkipSymlink: 4, SkipUnreadable: 1, SkipBinary: 2, SkipHuge: 1}
	for k, v := range want {
		if r.stats.Skipped[k] != v {
			t.Errorf("skipped %v; want %v", r.stats.Skipped, want)
			break
		}
	}
	if len(r.files) != 1 || r.files["proj/ok.c"] == nil {
		t.Errorf("visited %d files, want proj/ok.c", len(r.files))
	}
	// The same 100 MB line, 1 MiB allowed per file, in a compressed archive.
	if testing.Short() {
		return
	}
	p := filepath.Join(t.TempDir(), "line.tar.gz")
	writeHostile(t, p, []hostileEntry{{name: "oneline.c", data: bytes.Repeat([]byte("x"), 100<<20)}, {name: "ok.c", data: []byte("int ok;\n")}})
	src, err = OpenSource(p)
	must(t, err)
	r = walkAll(t, src, Options{})
	if r.err != nil || len(r.files) != 1 || r.stats.Skipped[SkipHuge] != 1 {
		t.Errorf("a 100 MB line in a tar.gz: err %v, %d files, skipped %v", r.err, len(r.files), r.stats.Skipped)
	}
}

// TestUnreadableFile: a file the walk may not read is skipped and counted.
func TestUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: permissions do not stop reads")
	}
	root := t.TempDir()
	writeTree(t, root, map[string]string{"ok.c": "int ok;\n", "secret.c": "int secret;\n"})
	must(t, os.Chmod(filepath.Join(root, "secret.c"), 0))
	src, err := OpenSource(root)
	must(t, err)
	r := walkAll(t, src, Options{})
	if r.err != nil || len(r.files) != 1 || r.stats.Skipped[SkipUnreadable] != 1 {
		t.Errorf("err %v, %d files, skipped %v; want ok.c and one unreadable", r.err, len(r.files), r.stats.Skipped)
	}
}
