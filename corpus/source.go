package corpus

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// A Source is one body of code to index: a directory, an archive read in place, or a
// single (possibly compressed) file.
type Source struct {
	// Path is the path as given, cleaned. Walk reads the file or directory it resolves
	// to: a symbolic link as the source root is followed, links inside it never are.
	Path string
	// Name is the name given as "NAME=PATH", else derived from Path: an archive's or a
	// file's base name without its archive or compression endings, a directory's base name.
	Name string
	// Kind is one of "dir", "tar", "tar.gz", "tar.xz", "tar.zst", "tar.bz2", "zip" or
	// "file", chosen by Path's ending for files.
	Kind string
	// Version is the source's version where it is known: the version of the Debian
	// package that owns Path, or the HEAD commit of a git work tree. Otherwise "".
	Version string
	// URLBase, where known, is the URL of the source's files on the web: the pipeline
	// appends a file's path below the source's single top directory (for a Debian
	// source tarball) or below the work tree (for a GitHub clone). Otherwise "".
	URLBase string

	real string       // Path with symbolic links resolved
	size int64        // for files: the size on disk
	read atomic.Int64 // bytes read so far, see BytesRead

	dirSizeOnce sync.Once
	dirSize     int64
}

// ErrUnsupported is returned by OpenSource for a path that is neither a directory nor
// a regular file.
var ErrUnsupported = errors.New("unsupported source")

// ErrBomb is wrapped by the error of a Walk that stopped reading an archive because
// it inflated far more than archives of source code do (see Options.MaxRatio).
var ErrBomb = errors.New("archive bomb")

// OpenSource opens the source that spec names. A spec is "PATH" or "NAME=PATH"; an
// existing path that contains "=" is taken as a path. OpenSource reads nothing but the
// metadata: the Walk reads the content.
func OpenSource(spec string) (*Source, error) {
	if spec == "" {
		return nil, errors.New("corpus: empty source")
	}
	name, p := "", spec
	if i := strings.IndexByte(spec, '='); i > 0 && !strings.ContainsRune(spec[:i], filepath.Separator) {
		if _, err := os.Lstat(spec); err != nil {
			name, p = spec[:i], spec[i+1:]
		}
	}
	if p == "" {
		return nil, fmt.Errorf("corpus: source %q: empty path", spec)
	}
	p = filepath.Clean(p)
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, fmt.Errorf("corpus: source %s: %w", p, err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return nil, fmt.Errorf("corpus: source %s: %w", p, err)
	}
	s := &Source{Path: p, Name: name, real: real}
	base := filepath.Base(p)
	switch {
	case fi.IsDir():
		s.Kind = KindDir
		if base == "." || base == string(filepath.Separator) {
			base = filepath.Base(real)
		}
		if s.Name == "" {
			s.Name = base
		}
	case fi.Mode().IsRegular():
		s.size = fi.Size()
		kind, stem := archiveKind(base)
		if kind == "" {
			kind = KindFile
			_, stem = compressed(base)
		}
		s.Kind = kind
		if s.Name == "" {
			s.Name = stem
		}
	default:
		return nil, fmt.Errorf("corpus: source %s: %w: %v", p, ErrUnsupported, fi.Mode().Type())
	}
	s.Version, s.URLBase = sourceVersion(s)
	return s, nil
}

// String returns the source's name and path.
func (s *Source) String() string {
	if s.Name == filepath.Base(s.Path) {
		return s.Path
	}
	return s.Name + "=" + s.Path
}

// Size returns the number of bytes that Walk reads from disk, for a progress bar: the
// file's size for an archive or a file, the sum of the regular files' sizes for a
// directory (computed on the first call, which walks the tree's metadata).
func (s *Source) Size() int64 {
	if s.Kind != KindDir {
		return s.size
	}
	s.dirSizeOnce.Do(func() {
		var n int64
		_ = filepath.WalkDir(s.real, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.IsDir() && p != s.real && vcsDirs[d.Name()] {
				return filepath.SkipDir
			}
			if d.Type().IsRegular() {
				if fi, err := d.Info(); err == nil {
					n += fi.Size()
				}
			}
			return nil
		})
		s.dirSize = n
	})
	return s.dirSize
}

// BytesRead returns the number of bytes Walk has read from disk so far; the bytes of
// files it skipped without reading count as read, and when Walk returns nil it equals
// Size. It is safe to call while Walk runs.
func (s *Source) BytesRead() int64 {
	return s.read.Load()
}

// countingReader counts the bytes read through it into a Source.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// countingReaderAt counts the bytes read through it into a Source.
type countingReaderAt struct {
	r io.ReaderAt
	n *atomic.Int64
}

func (c countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n.Add(int64(n))
	return n, err
}
