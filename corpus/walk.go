package corpus

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"sync"

	"cleanroom/fingerprint"
)

// A File is a source file that Walk hands to its visitor.
type File struct {
	// Path is the slash path relative to the source root; for an archive the cleaned
	// entry name ("linux-source-6.1/kernel/sched/core.c"), for a compressed file the
	// name without its compression ending ("lisp/simple.el" for lisp/simple.el.gz).
	Path string
	// Lang is the language that Path's extension says.
	Lang fingerprint.Lang
	// Data is the whole, decompressed content. It is the visitor's to keep.
	Data []byte
	// Generated is set for generated code (by its name or a marker in its header)
	// that Walk hands on because it states a copyleft license (see Stats.Generated).
	Generated bool
}

// Stats counts what Walk did with a source's files. Its methods are safe for
// concurrent use; read its fields directly only when no Walk writing to it is running,
// else take a Snapshot.
type Stats struct {
	Files        int64            // files handed to the visitor
	Bytes        int64            // their bytes, decompressed
	LicenseFiles int64            // license files handed to Repos
	Skipped      map[string]int64 // files skipped, by reason (the Skip* constants)
	// Generated counts the files among Files that are generated code handed on
	// because they state a copyleft license of their own; generated code without
	// one is Skipped[SkipGenerated].
	Generated int64

	mu sync.Mutex
}

// Snapshot returns a copy of the counts.
func (s *Stats) Snapshot() *Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Stats{Files: s.Files, Bytes: s.Bytes, LicenseFiles: s.LicenseFiles, Generated: s.Generated, Skipped: maps.Clone(s.Skipped)}
}

// Add adds the counts of o to s.
func (s *Stats) Add(o *Stats) {
	o = o.Snapshot()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Files += o.Files
	s.Bytes += o.Bytes
	s.LicenseFiles += o.LicenseFiles
	s.Generated += o.Generated
	for k, v := range o.Skipped {
		s.skipLocked(k, v)
	}
}

// SkippedTotal returns the number of files skipped for any reason.
func (s *Stats) SkippedTotal() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, v := range s.Skipped {
		n += v
	}
	return n
}

func (s *Stats) skipLocked(reason string, n int64) {
	if s.Skipped == nil {
		s.Skipped = make(map[string]int64)
	}
	s.Skipped[reason] += n
}

func (s *Stats) skip(reason string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.skipLocked(reason, 1)
	s.mu.Unlock()
}

func (s *Stats) served(n int, generated bool) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.Files++
	s.Bytes += int64(n)
	if generated {
		s.Generated++
	}
	s.mu.Unlock()
}

func (s *Stats) license() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.LicenseFiles++
	s.mu.Unlock()
}

// Walk reads every entry of src in order, in the calling goroutine, and hands each file
// in a served language to visit, unless a skip rule applies; it counts skipped files by
// reason in stats. License files (LICENSE*, LICENCE*, COPYING*, COPYRIGHT*, UNLICENSE*,
// in any case, that are not code) go to repos and not to visit. Repos and stats may be nil.
//
// Archives are read in place, never extracted. Walk follows no symbolic link below the
// source root, skips archive entries that would escape it, and never reads VCS
// metadata (.git, .hg, .svn, .bzr), which it does not count either. An unreadable file
// or a corrupt entry is counted as "unreadable" and the walk goes on; a corrupt archive
// stream ends it with an error naming the source. Walk stops at the first error that
// visit returns, or when ctx is done, and returns that error.
func Walk(ctx context.Context, src *Source, opts Options, repos *Repos, stats *Stats, visit func(*File) error) error {
	if err := opts.check(); err != nil {
		return err
	}
	w := &walker{ctx: ctx, src: src, opts: opts, max: opts.maxFileSize(), repos: repos, stats: stats, visit: visit}
	src.read.Store(0)
	var err error
	switch src.Kind {
	case KindDir:
		err = w.walkDir()
	case KindFile:
		err = w.walkFile()
	case KindZip:
		err = w.walkZip()
	case KindTar, KindTarGz, KindTarXz, KindTarZst, KindTarBz2:
		err = w.walkTar()
	default:
		return fmt.Errorf("corpus: source %s: %w: kind %q", src.Path, ErrUnsupported, src.Kind)
	}
	if err == nil {
		// A zip's directory is read twice and a stream's padding not at all: round
		// off, so that a progress bar ends full.
		src.read.Store(src.Size())
	}
	return err
}

// walker holds the state of one Walk.
type walker struct {
	ctx   context.Context
	src   *Source
	opts  Options
	max   int64
	repos *Repos
	stats *Stats
	visit func(*File) error

	inflated int64 // bytes an archive gave, decompressed
	bomb     error // set when a zip turned out a bomb
}

// inflate counts n more bytes an archive gave, and returns an error wrapping
// ErrBomb when it has inflated too much for the bytes read from it.
func (w *walker) inflate(n int) error {
	w.inflated += int64(n)
	ratio := w.opts.maxRatio()
	if ratio == 0 || w.inflated <= bombFloor {
		return nil
	}
	if read := w.src.read.Load(); w.inflated > ratio*max(read, 1) {
		return fmt.Errorf("%w: %d bytes inflated from %d read, more than %d times", ErrBomb, w.inflated, read, ratio)
	}
	return nil
}

// bombGuard counts what a decompressed archive stream gives.
type bombGuard struct {
	r   io.Reader
	w   *walker
	err error
}

func (g *bombGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.r.Read(p)
	if berr := g.w.inflate(n); berr != nil {
		g.err = berr
		return n, berr
	}
	return n, err
}

// entry is a file of a source before it is read.
type entry struct {
	path string // cleaned slash path relative to the source root
	size int64  // size as stored (compressed, for X.gz), or -1 when unknown
	open func() (io.ReadCloser, error)
}

// errorf returns an error about the source.
func (w *walker) errorf(format string, args ...any) error {
	return fmt.Errorf("corpus: source %s: "+format, append([]any{w.src.Path}, args...)...)
}

// skip counts a skipped file.
func (w *walker) skip(p, reason string) {
	w.stats.skip(reason)
	if w.opts.OnSkip != nil {
		w.opts.OnSkip(p, reason)
	}
}

// see tells repos about a path, so that it learns the source's top directories.
func (w *walker) see(p string, isDir bool) {
	if w.repos != nil {
		w.repos.see(p, isDir)
	}
}

// handle applies the skip rules to a regular file and reads it when they let it through.
func (w *walker) handle(e entry) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	p := e.path
	dir, name := path.Split(p)
	codec, inner := compressed(name)
	if codec != codecNone {
		name, p = inner, dir+inner
	}
	lang, served := fingerprint.LangForPath(name)
	if isLicenseName(name) && !served {
		return w.handleLicense(e, p, codec)
	}
	if k, _ := archiveKind(name); k != "" {
		w.skip(p, SkipArchive)
		return nil
	}
	reason := ""
	huge := codec == codecNone && e.size > w.max
	genName := generatedName(name)
	switch {
	case !served:
		reason = SkipLanguage
	case isVendored(p):
		reason = SkipVendored
	case !w.opts.selects(p, true):
		reason = SkipExcluded
	case minifiedName(name), genName && huge:
		// A generated file too big to read is not read for a notice.
		reason = SkipGenerated
	case huge:
		reason = SkipHuge
	}
	if reason != "" {
		w.skip(p, reason)
		return nil
	}
	data, reason := w.read(e, codec)
	generated := false
	if reason == "" {
		reason, generated = contentSkip(data, genName)
	} else if genName && reason == SkipHuge {
		reason = SkipGenerated
	}
	if reason != "" {
		w.skip(p, reason)
		return nil
	}
	w.stats.served(len(data), generated)
	return w.visit(&File{Path: p, Lang: lang, Data: data, Generated: generated})
}

// handleLicense reads a license file into repos. A license file in a vendored
// directory belongs to code that is skipped, so it is skipped too.
func (w *walker) handleLicense(e entry, p, codec string) error {
	if isVendored(p) {
		w.skip(p, SkipVendored)
		return nil
	}
	if !w.opts.selects(p, false) {
		w.skip(p, SkipExcluded)
		return nil
	}
	if codec == codecNone && e.size > w.max {
		w.skip(p, SkipHuge)
		return nil
	}
	data, reason := w.read(e, codec)
	if reason == "" && isBinary(data) {
		reason = SkipBinary
	}
	if reason != "" {
		w.skip(p, reason)
		return nil
	}
	w.stats.license()
	if w.repos != nil {
		w.repos.addLicense(p, data)
	}
	return nil
}

// read reads an entry whole, decompressing it, and returns its content or the reason
// it cannot be had ("unreadable" or "huge").
func (w *walker) read(e entry, codec string) ([]byte, string) {
	rc, err := e.open()
	if err != nil {
		return nil, SkipUnreadable
	}
	defer rc.Close()
	r, hint := io.Reader(rc), e.size
	if codec != codecNone {
		d, err := decompressor(codec, rc)
		if err != nil {
			return nil, SkipUnreadable
		}
		defer d.Close()
		r, hint = d, -1
	}
	// Read to the end even when the size is known: zip checks its CRC there.
	var buf bytes.Buffer
	if hint >= 0 && hint <= w.max {
		buf.Grow(int(hint) + bytes.MinRead)
	}
	if _, err := buf.ReadFrom(io.LimitReader(r, w.max+1)); err != nil {
		return nil, SkipUnreadable
	}
	if w.src.Kind == KindZip {
		if err := w.inflate(buf.Len()); err != nil {
			w.bomb = err
			return nil, SkipHuge
		}
	}
	if int64(buf.Len()) > w.max {
		return nil, SkipHuge
	}
	return buf.Bytes(), ""
}

// walkDir walks a directory tree in lexical order. Each file's size counts as read
// once it is handled, read or not.
func (w *walker) walkDir() error {
	root := w.src.real
	return filepath.WalkDir(root, func(full string, d fs.DirEntry, err error) error {
		if cerr := w.ctx.Err(); cerr != nil {
			return cerr
		}
		if full == root {
			if err != nil {
				return w.errorf("%w", err)
			}
			return nil
		}
		rel, rerr := filepath.Rel(root, full)
		if rerr != nil {
			return w.errorf("%w", rerr)
		}
		p := filepath.ToSlash(rel)
		if err != nil {
			// Lstat or ReadDir failed; for a directory this is its second call.
			w.skip(p, SkipUnreadable)
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if vcsDirs[d.Name()] {
				return filepath.SkipDir
			}
			w.see(p, true)
			return nil
		}
		w.see(p, false)
		switch t := d.Type(); {
		case t&fs.ModeSymlink != 0:
			w.skip(p, SkipSymlink)
			return nil
		case !t.IsRegular():
			w.skip(p, SkipUnreadable)
			return nil
		}
		var size int64
		if fi, err := d.Info(); err == nil {
			size = fi.Size()
		}
		err = w.handle(entry{path: p, size: size, open: func() (io.ReadCloser, error) { return os.Open(full) }})
		w.src.read.Add(size)
		return err
	})
}

// walkFile handles a source that is a single file. Its size counts as read once it is
// handled.
func (w *walker) walkFile() error {
	name := filepath.Base(w.src.real)
	w.see(name, false)
	err := w.handle(entry{path: name, size: w.src.size, open: func() (io.ReadCloser, error) {
		return os.Open(w.src.real)
	}})
	w.src.read.Store(w.src.size)
	return err
}
