// Package build turns sources into an index: it walks each source, fingerprints its
// files on every core, decides their licenses once the source's license files are
// all known, and hands the files the policy keeps to an index.Builder.
package build

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"cleanroom/corpus"
	"cleanroom/corpus/license"
	"cleanroom/fingerprint"
	"cleanroom/index"
)

// Options configure a build.
type Options struct {
	Out    string             // index directory
	Params fingerprint.Params // default fingerprint.DefaultParams
	// Rename are the parameters of rename-robust fingerprints; zero for none.
	Rename fingerprint.Params
	// Allow are sources of permissive reference code (NAME=PATH or PATH): their
	// fingerprints make the index's allow set, boilerplate not to count as evidence.
	Allow []string
	// KGramBits is how many bits the filter of all k-grams (index.Builder.InitKGrams)
	// spends per k-gram; 0 builds none. It is sized from the sources' sizes before
	// they are read: a bad estimate costs false positives (a longer holdback in the
	// proxy), never a missed match.
	KGramBits int
	Workers   int // fingerprinting goroutines; default GOMAXPROCS
	Walk      corpus.Options
	// Partition, with Partitions > 1, builds only slice Partition of the sources'
	// files (by a hash of source name and path), so that Partitions workers build
	// one index together; allow sources are read by partition 0 only.
	Partition, Partitions int
	Policy                *license.Policy // default license.DefaultPolicy()
	Index                 index.BuildOptions
	Log                   *slog.Logger // default slog.Default()
}

// Summary is what a build did.
type Summary struct {
	Manifest *index.Manifest
	Elapsed  time.Duration
	// Licenses counts the files read by the SPDX expression that governs them,
	// indexed or not; Excluded counts files left out by license class.
	// Licenses are in canonical form (license.Canonical): "GPL-2.0", "GPL-2.0-only"
	// and "(GPL-2.0)" count as GPL-2.0-only.
	Licenses map[string]int64
	Excluded map[string]int64
	Skipped  map[string]int64
	Files    int64 // source files read and fingerprinted
	Bytes    int64
	// Generated counts the files of Files that are generated code read because they
	// state a copyleft license of their own (corpus.Stats.Generated), and
	// GeneratedIndexed those of them the policy kept; generated code without such a
	// notice is Skipped["generated"].
	Generated, GeneratedIndexed int64
}

// Progress reports a running build; see Builder.Progress.
type Progress struct {
	Source     string
	Files      int64 // files fingerprinted so far, all sources
	Bytes      int64 // their bytes
	Read       int64 // bytes read from disk so far (compressed, for archives)
	Total      int64 // bytes the build will read from disk in all
	Elapsed    time.Duration
	SourceDone int // sources finished
}

// A Builder runs one build and can report its progress from another goroutine.
type Builder struct {
	opts    Options
	sources []*corpus.Source
	allow   []*corpus.Source
	cur     atomic.Int32
	files   atomic.Int64
	bytes   atomic.Int64
	started time.Time
	// otherPartitions counts the files left to other partitions.
	otherPartitions atomic.Int64
}

// New opens every source (reading only their metadata) so that a mistake in the
// arguments fails before any work.
func New(opts Options, specs []string) (*Builder, error) {
	if opts.Params == (fingerprint.Params{}) {
		opts.Params = fingerprint.DefaultParams
	}
	if err := opts.Params.Validate(); err != nil {
		return nil, err
	}
	if opts.Rename != (fingerprint.Params{}) {
		if err := opts.Rename.Validate(); err != nil {
			return nil, fmt.Errorf("rename-robust parameters: %w", err)
		}
	}
	if opts.Partitions > 1 && (opts.Partition < 0 || opts.Partition >= opts.Partitions) {
		return nil, fmt.Errorf("partition %d of %d: want 0 <= I < N", opts.Partition, opts.Partitions)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Policy == nil {
		opts.Policy = license.DefaultPolicy()
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if len(specs) == 0 {
		return nil, errors.New("no sources given")
	}
	b := &Builder{opts: opts, started: time.Now()}
	for _, spec := range specs {
		src, err := corpus.OpenSource(spec)
		if err != nil {
			return nil, err
		}
		b.sources = append(b.sources, src)
	}
	for _, spec := range opts.Allow {
		src, err := corpus.OpenSource(spec)
		if err != nil {
			return nil, fmt.Errorf("allow source: %w", err)
		}
		b.allow = append(b.allow, src)
	}
	return b, nil
}

// Progress returns how far the build is.
func (b *Builder) Progress() Progress {
	p := Progress{Files: b.files.Load(), Bytes: b.bytes.Load(), Elapsed: time.Since(b.started)}
	cur := int(b.cur.Load())
	p.SourceDone = cur
	for i, s := range slices.Concat(b.sources, b.allow) {
		sz := s.Size()
		p.Total += sz
		switch {
		case i < cur:
			p.Read += sz
		case i == cur:
			p.Read += min(s.BytesRead(), sz)
			p.Source = s.Name
		}
	}
	return p
}

// Run builds the index. On error or cancellation the previous index in Out, if any,
// is left as it was.
func (b *Builder) Run(ctx context.Context) (*Summary, error) {
	iopts := b.opts.Index
	iopts.Params, iopts.Rename = b.opts.Params, b.opts.Rename
	ib, err := index.NewBuilder(b.opts.Out, iopts)
	if err != nil {
		return nil, err
	}
	go corpus.PreloadLicenseDB()
	if b.opts.KGramBits > 0 {
		var bytes int64
		for _, src := range b.sources {
			bytes += estimateText(src)
		}
		ib.InitKGrams(bytes/6, b.opts.KGramBits) // code runs 4 to 7 bytes a token
	}
	sum := &Summary{Licenses: map[string]int64{}, Excluded: map[string]int64{}, Skipped: map[string]int64{}}
	var infos []index.SourceInfo
	for i, src := range b.sources {
		b.cur.Store(int32(i))
		info, err := b.source(ctx, ib, src, sum)
		if err != nil {
			ib.Abort()
			return nil, fmt.Errorf("%s: %w", src.Path, err)
		}
		infos = append(infos, info)
	}
	for i, src := range b.allow {
		if b.opts.Partitions > 1 && b.opts.Partition != 0 {
			break // partition 0 reads the allow sources
		}
		b.cur.Store(int32(len(b.sources) + i))
		if err := b.allowSource(ctx, ib, src); err != nil {
			ib.Abort()
			return nil, fmt.Errorf("allow source %s: %w", src.Path, err)
		}
	}
	b.cur.Store(int32(len(b.sources) + len(b.allow)))
	policy, _ := json.Marshal(b.opts.Policy.String())
	m, err := ib.Finish(&index.Manifest{Sources: infos, Policy: policy})
	if err != nil {
		return nil, err
	}
	sum.Manifest, sum.Elapsed = m, time.Since(b.started)
	if n := b.otherPartitions.Load(); n > 0 {
		sum.Skipped["other partition"] = n
	}
	return sum, nil
}

// fileResult is a fingerprinted file on its way to the spool.
type fileResult struct {
	seq       int
	doc       *index.Doc // Path: path in the source; License, LicenseFrom: the file's own
	size      int
	generated bool // generated code kept for its copyleft notice
}

// estimateText estimates the bytes of text a source holds, from its size on disk
// and the ratio its compression typically achieves on source code.
func estimateText(src *corpus.Source) int64 {
	ratio := map[string]int64{corpus.KindTarGz: 5, corpus.KindTarXz: 8, corpus.KindTarZst: 6, corpus.KindTarBz2: 6, corpus.KindZip: 4}[src.Kind]
	if src.Kind == corpus.KindFile && strings.ContainsAny(filepath.Ext(src.Path), "gzxzstbz2") {
		ratio = 4
	}
	return src.Size() * max(ratio, 1)
}

// allowSource fingerprints a permissive reference source into the allow set: every
// file, whatever its license.
func (b *Builder) allowSource(ctx context.Context, ib *index.Builder, src *corpus.Source) error {
	b.opts.Log.Info("reading allow source", "source", src.Name, "path", src.Path)
	var exact, renamed []uint64
	err := b.fingerprintAll(ctx, src, nil, nil, nil, func(r fileResult) error {
		for _, p := range r.doc.Postings {
			exact = append(exact, p.Hash)
		}
		for _, p := range r.doc.Renamed {
			renamed = append(renamed, p.Hash)
		}
		return nil
	})
	if err != nil {
		return err
	}
	ib.AddAllow(src.Name, exact, renamed)
	return nil
}

// fingerprintAll walks a source and fingerprints its files on every core, handing
// each result to handle in walk order (a build is reproducible), from one goroutine.
// The k-grams of every file go to kgrams' filter, when it is not nil.
func (b *Builder) fingerprintAll(ctx context.Context, src *corpus.Source, repos *corpus.Repos, stats *corpus.Stats,
	kgrams *index.Builder, handle func(fileResult) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		seq int
		f   *corpus.File
	}
	jobs := make(chan job, 2*b.opts.Workers)
	results := make(chan fileResult, 2*b.opts.Workers)
	var wg sync.WaitGroup
	for range b.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := fingerprint.NewStream(b.opts.Params, fingerprint.Text)
			if b.opts.Rename != (fingerprint.Params{}) {
				s.EnableRename(b.opts.Rename)
			}
			if kgrams != nil && b.opts.KGramBits > 0 {
				s.CollectKGrams()
			}
			for j := range jobs {
				r := fingerprintFile(s, b.opts.Rename.K > 0, j.seq, j.f)
				if kgrams != nil {
					kgrams.AddKGrams(s.KGrams)
				}
				results <- r
			}
		}()
	}
	collected := make(chan error, 1)
	go func() {
		pending := map[int]fileResult{}
		next := 0
		var err error
		for r := range results {
			pending[r.seq] = r
			for {
				r, ok := pending[next]
				if !ok {
					break
				}
				delete(pending, next)
				next++
				if err == nil {
					if err = handle(r); err != nil {
						cancel()
					}
				}
				b.files.Add(1)
				b.bytes.Add(int64(r.size))
			}
		}
		collected <- err
	}()
	seq := 0
	walkErr := corpus.Walk(ctx, src, b.opts.Walk, repos, stats, func(f *corpus.File) error {
		if !b.inPartition(src, f) {
			b.otherPartitions.Add(1)
			return nil
		}
		select {
		case jobs <- job{seq, f}:
			seq++
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(jobs)
	wg.Wait()
	close(results)
	if err := <-collected; err != nil {
		return err
	}
	return walkErr
}

// inPartition reports whether f belongs to the partition being built.
func (b *Builder) inPartition(src *corpus.Source, f *corpus.File) bool {
	n := b.opts.Partitions
	if n <= 1 {
		return true
	}
	return int(xxhash.Sum64String(src.Name+"\x00"+f.Path)%uint64(n)) == b.opts.Partition
}

// source builds one source: walk and fingerprint into a spool, then decide.
func (b *Builder) source(ctx context.Context, ib *index.Builder, src *corpus.Source, sum *Summary) (index.SourceInfo, error) {
	log := b.opts.Log.With("source", src.Name)
	log.Info("reading", "path", src.Path, "kind", src.Kind, "version", src.Version)
	info := index.SourceInfo{Name: src.Name, Path: src.Path, Kind: src.Kind, Version: src.Version,
		Excluded: map[string]int64{}}
	sp, err := newSpool(b.opts.Out)
	if err != nil {
		return info, err
	}
	defer sp.remove()
	repos := corpus.NewRepos(src)
	stats := &corpus.Stats{}
	generated := map[string]bool{} // paths of generated files kept for their notice
	if err := b.fingerprintAll(ctx, src, repos, stats, ib, func(r fileResult) error {
		if r.generated {
			generated[r.doc.Path] = true
		}
		return sp.add(r.doc)
	}); err != nil {
		return info, err
	}
	if err := repos.Detect(); err != nil {
		return info, err
	}
	for _, r := range repos.All() {
		if r.License != "" {
			log.Info("repository", "root", r.Root, "license", r.License, "confidence", r.Confidence, "files", strings.Join(r.LicenseFiles, ","))
		}
	}
	st := stats.Snapshot()
	info.Files, info.Bytes, info.Skipped, info.Generated = st.Files, st.Bytes, st.Skipped, st.Generated
	for k, v := range st.Skipped {
		sum.Skipped[k] += v
	}
	sum.Files += st.Files
	sum.Bytes += st.Bytes
	sum.Generated += st.Generated

	// Decide each file's license now that every license file has been seen.
	repoIDs := map[*corpus.Repo]int{}
	err = sp.each(func(d *index.Doc) error {
		r := repos.For(d.Path)
		if d.License == "" && r.License != "" {
			d.License, d.LicenseFrom = r.License, "repository"
		}
		keep, class, err := b.opts.Policy.Keep(d.License)
		if err != nil {
			log.Warn("unparsable license expression", "path", d.Path, "license", d.License, "err", err)
			keep, class = false, license.Unknown
		}
		sum.Licenses[licenseKey(d.License)]++
		if !keep {
			info.Excluded[class.String()]++
			sum.Excluded[class.String()]++
			return nil
		}
		if generated[d.Path] {
			info.GeneratedIndexed++
			sum.GeneratedIndexed++
		}
		id, ok := repoIDs[r]
		if !ok {
			id = ib.AddRepo(indexRepo(src, r))
			repoIDs[r] = id
		}
		d.Repo = id
		if r.Root != "" {
			d.Path = strings.TrimPrefix(d.Path, r.Root+"/")
		}
		info.Indexed++
		return ib.Add(d)
	})
	log.Info("done", "files", info.Files, "indexed", info.Indexed, "generated", info.Generated,
		"generated_indexed", info.GeneratedIndexed, "excluded", info.Excluded, "skipped", info.Skipped)
	return info, err
}

// licenseKey returns the key of a license expression in Summary.Licenses: its
// canonical form, or "(none)".
func licenseKey(expr string) string {
	if expr == "" {
		return "(none)"
	}
	return license.CanonicalOrSelf(expr)
}

// fingerprintFile tokenizes and fingerprints one file and reads its own license.
func fingerprintFile(s *fingerprint.Stream, rename bool, seq int, f *corpus.File) fileResult {
	s.Reset(f.Lang)
	s.Write(f.Data)
	s.Close()
	d := index.NewDoc(s.Tokens, s.Fingerprints)
	if rename {
		d.AddRenamed(s.Tokens, s.Renamed)
	}
	d.Path, d.Lang, d.Size = f.Path, f.Lang.String(), int64(len(f.Data))
	d.License, d.LicenseFrom = corpus.FileLicense(f.Data)
	return fileResult{seq: seq, doc: d, size: len(f.Data), generated: f.Generated}
}

// indexRepo describes a repository for the index, with a URL template for its files.
func indexRepo(src *corpus.Source, r *corpus.Repo) index.Repo {
	ir := index.Repo{Name: r.Name, Root: r.Root, License: r.License, Confidence: r.Confidence, Source: src.Name, Version: src.Version}
	if src.URLBase != "" {
		dir := r.Root
		if src.Kind != "dir" {
			// An archive's URL base is below its single top directory.
			if _, rest, ok := strings.Cut(dir, "/"); ok {
				dir = rest
			} else {
				dir = ""
			}
		}
		if dir != "" {
			dir += "/"
		}
		anchor := "#L{start}"
		if strings.Contains(src.URLBase, "github.com") {
			anchor = "#L{start}-L{end}"
		}
		ir.URL = src.URLBase + dir + "{path}" + anchor
	}
	return ir
}

// spool holds fingerprinted documents on disk until their licenses are decided.
type spool struct {
	f   *os.File
	w   *bufio.Writer
	buf []byte
}

func newSpool(dir string) (*spool, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, ".spool-*")
	if err != nil {
		return nil, err
	}
	return &spool{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

func (s *spool) add(d *index.Doc) error {
	var err error
	if s.buf, err = d.AppendBinary(s.buf[:0]); err != nil {
		return err
	}
	var hdr [binary.MaxVarintLen64]byte
	s.w.Write(hdr[:binary.PutUvarint(hdr[:], uint64(len(s.buf)))])
	_, err = s.w.Write(s.buf)
	return err
}

// each reads the documents back in order.
func (s *spool) each(fn func(*index.Doc) error) error {
	if err := s.w.Flush(); err != nil {
		return err
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(s.f, 1<<20)
	var buf []byte
	for {
		n, err := binary.ReadUvarint(r)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if cap(buf) < int(n) {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		d := &index.Doc{}
		if err := d.UnmarshalBinary(buf); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if err := fn(d); err != nil {
			return err
		}
	}
}

func (s *spool) remove() {
	s.f.Close()
	os.Remove(s.f.Name())
}
