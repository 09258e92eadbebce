package corpus

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// streamBuffer is the read buffer between an archive file and its decompressor. The xz
// reader in particular reads in small pieces.
const streamBuffer = 1 << 20

// nopCloser turns a Reader into a ReadCloser.
type nopCloser struct{ io.Reader }

func (nopCloser) Close() error { return nil }

// zstdCloser closes a zstd decoder, which holds goroutines and buffers until then.
type zstdCloser struct{ *zstd.Decoder }

func (z zstdCloser) Close() error { z.Decoder.Close(); return nil }

// decompressor returns a reader of the decompressed stream r.
func decompressor(codec string, r io.Reader) (io.ReadCloser, error) {
	switch codec {
	case codecGzip:
		return gzip.NewReader(r)
	case codecXz:
		x, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		return nopCloser{x}, nil
	case codecZstd:
		z, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return zstdCloser{z}, nil
	case codecBz2:
		return nopCloser{bzip2.NewReader(r)}, nil
	}
	return nopCloser{r}, nil
}

// tarCodecs maps tar kinds to the codec of their stream.
var tarCodecs = map[string]string{
	KindTar: codecNone, KindTarGz: codecGzip, KindTarXz: codecXz, KindTarZst: codecZstd, KindTarBz2: codecBz2,
}

// cleanEntryName returns the cleaned slash path of an archive entry, and false when
// the name is absolute or climbs out with "..". Backslashes count as separators for
// the test, since archivers on Windows write them. The root entry cleans to "".
func cleanEntryName(name string) (string, bool) {
	test := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(test, "/") || (len(test) >= 2 && test[1] == ':') {
		return "", false
	}
	for _, seg := range strings.Split(test, "/") {
		if seg == ".." {
			return "", false
		}
	}
	p := path.Clean(name)
	if p == "." {
		return "", true
	}
	return p, true
}

// walkTar reads a tar stream, compressed or not, entry by entry.
func (w *walker) walkTar() error {
	f, err := os.Open(w.src.real)
	if err != nil {
		return w.errorf("%w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(countingReader{f, &w.src.read}, streamBuffer)
	d, err := decompressor(tarCodecs[w.src.Kind], br)
	if err != nil {
		return w.errorf("%w", err)
	}
	defer d.Close()
	tr := tar.NewReader(&bombGuard{r: d, w: w})
	for {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil && !errors.Is(err, tar.ErrInsecurePath) {
			return w.errorf("%w", err)
		}
		if err := w.tarEntry(tr, h); err != nil {
			return err
		}
	}
}

// tarEntry handles one tar header. The tar reader skips what the entry does not read.
func (w *walker) tarEntry(tr *tar.Reader, h *tar.Header) error {
	switch h.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil // metadata, which the reader has already applied
	}
	p, ok := cleanEntryName(h.Name)
	if !ok {
		w.skip(h.Name, SkipUnsafePath)
		return nil
	}
	if p == "" || inVCSDir(p) {
		return nil
	}
	if h.Typeflag == tar.TypeDir {
		w.see(p, true)
		return nil
	}
	w.see(p, false)
	switch h.Typeflag {
	case tar.TypeSymlink, tar.TypeLink:
		w.skip(p, SkipSymlink)
		return nil
	case tar.TypeReg, tar.TypeCont, tar.TypeGNUSparse:
	default:
		w.skip(p, SkipUnreadable)
		return nil
	}
	return w.handle(entry{path: p, size: h.Size, open: func() (io.ReadCloser, error) {
		return nopCloser{tr}, nil
	}})
}

// walkZip reads a zip archive in place through its central directory, in the order
// the directory lists the entries.
func (w *walker) walkZip() error {
	f, err := os.Open(w.src.real)
	if err != nil {
		return w.errorf("%w", err)
	}
	defer f.Close()
	zr, err := zip.NewReader(countingReaderAt{f, &w.src.read}, w.src.size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return w.errorf("%w", err)
	}
	for _, zf := range zr.File {
		if err := w.ctx.Err(); err != nil {
			return err
		}
		p, ok := cleanEntryName(zf.Name)
		if !ok {
			w.skip(zf.Name, SkipUnsafePath)
			continue
		}
		if p == "" || inVCSDir(p) {
			continue
		}
		mode := zf.Mode()
		if mode.IsDir() {
			w.see(p, true)
			continue
		}
		w.see(p, false)
		switch {
		case mode&fs.ModeSymlink != 0:
			w.skip(p, SkipSymlink)
			continue
		case !mode.IsRegular():
			w.skip(p, SkipUnreadable)
			continue
		}
		size := int64(zf.UncompressedSize64)
		if zf.UncompressedSize64 > 1<<62 {
			size = 1 << 62
		}
		if err := w.handle(entry{path: p, size: size, open: zf.Open}); err != nil {
			return err
		}
		if w.bomb != nil {
			return w.errorf("%w", w.bomb)
		}
	}
	return nil
}
