package index

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"cleanroom/fingerprint"
)

// BuildOptions configure a Builder.
type BuildOptions struct {
	// Params are the fingerprint parameters the documents were made with.
	Params fingerprint.Params
	// Rename are the parameters of the documents' rename-robust fingerprints
	// (Doc.AddRenamed); zero when the index has none.
	Rename fingerprint.Params
	// MaxShardPostings and MaxShardTokens bound a shard, and so the memory a build
	// holds: a shard is written once either would be exceeded. Defaults: 8M
	// postings, 256M tokens.
	MaxShardPostings int
	MaxShardTokens   int64
}

func (o *BuildOptions) defaults() {
	if o.MaxShardPostings <= 0 {
		o.MaxShardPostings = 8 << 20
	}
	if o.MaxShardTokens <= 0 {
		o.MaxShardTokens = 256 << 20
	}
}

// A Builder writes an index directory: documents go in one at a time and are cut
// into shards of bounded size, each sorted in memory and written while the next one
// fills; the manifest is written last. Until Finish, readers of the directory keep
// seeing the previous index, if any. A Builder is not safe for concurrent use.
type Builder struct {
	dir   string
	opts  BuildOptions
	build string
	repos []Repo

	cur      []*Doc
	curPost  int
	curTok   int64
	shards   []ShardInfo
	pending  chan error // result of the shard being written, if any
	totals   Totals
	licenses map[string]int
	err      error

	allowExact, allowRename []uint64
	allowSources            []string
	kgrams                  *kgramBuilder
}

// NewBuilder starts a build into dir, creating it if needed.
func NewBuilder(dir string, opts BuildOptions) (*Builder, error) {
	opts.defaults()
	if err := opts.Params.Validate(); err != nil {
		return nil, err
	}
	if opts.Rename != (fingerprint.Params{}) {
		if err := opts.Rename.Validate(); err != nil {
			return nil, fmt.Errorf("rename-robust parameters: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var id [4]byte
	rand.Read(id[:])
	build := time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(id[:])
	return &Builder{dir: dir, opts: opts, build: build, licenses: map[string]int{}}, nil
}

// AddRepo registers a repository and returns the number documents use to refer to it.
func (b *Builder) AddRepo(r Repo) int {
	r.canonicalize()
	b.repos = append(b.repos, r)
	return len(b.repos) - 1
}

// Add adds a document; its Repo must have been returned by AddRepo. The builder
// keeps d until its shard is written.
func (b *Builder) Add(d *Doc) error {
	if b.err != nil {
		return b.err
	}
	if d.Repo < 0 || d.Repo >= len(b.repos) {
		return fmt.Errorf("index: document %s refers to unknown repository %d", d.Path, d.Repo)
	}
	rename := b.opts.Rename != (fingerprint.Params{})
	if rename && len(d.Idents) != (d.NumTokens()+7)/8 || !rename && d.Idents != nil {
		return fmt.Errorf("index: document %s: rename-robust fingerprints are required exactly when the build has rename parameters", d.Path)
	}
	if len(b.cur) > 0 && (b.curPost+len(d.Postings) > b.opts.MaxShardPostings || b.curTok+int64(d.NumTokens()) > b.opts.MaxShardTokens) {
		b.flush()
	}
	b.cur = append(b.cur, d)
	b.curPost += len(d.Postings)
	b.curTok += int64(d.NumTokens())
	b.totals.Docs++
	b.totals.Postings += int64(len(d.Postings))
	b.totals.Tokens += int64(d.NumTokens())
	b.totals.Bytes += d.Size
	// What the shard stores, and what its readers will canonicalise.
	d.License, d.LicenseAsFound = canonicalLicense(d.licenseAsFound())
	b.licenses[d.License]++
	return b.err
}

// flush hands the current shard to a writer goroutine, after the previous one is done.
func (b *Builder) flush() {
	b.wait()
	if b.err != nil || len(b.cur) == 0 {
		return
	}
	docs := b.cur
	b.cur, b.curPost, b.curTok = nil, 0, 0
	name := fmt.Sprintf("shard-%s-%05d.crs", b.build, len(b.shards))
	b.shards = append(b.shards, ShardInfo{File: name})
	info := &b.shards[len(b.shards)-1]
	b.pending = make(chan error, 1)
	go func(ch chan error) { ch <- b.writeShardFile(info, docs) }(b.pending)
}

func (b *Builder) wait() {
	if b.pending == nil {
		return
	}
	if err := <-b.pending; err != nil && b.err == nil {
		b.err = err
	}
	b.pending = nil
}

// writeShardFile writes docs as the shard info names, with their repositories
// renumbered to the shard's own table.
func (b *Builder) writeShardFile(info *ShardInfo, docs []*Doc) error {
	local := map[int]int{}
	var repos []Repo
	for _, d := range docs {
		if _, ok := local[d.Repo]; !ok {
			local[d.Repo] = len(repos)
			repos = append(repos, b.repos[d.Repo])
		}
	}
	shardDocs := make([]*Doc, len(docs))
	for i, d := range docs {
		c := *d
		c.Repo = local[d.Repo]
		shardDocs[i] = &c
	}
	x, err := createIndexFile(filepath.Join(b.dir, info.File))
	if err != nil {
		return err
	}
	meta := ShardMeta{K: b.opts.Params.K, W: b.opts.Params.W, Tokenizer: fingerprint.TokenizerVersion, Build: b.build,
		RK: b.opts.Rename.K, RW: b.opts.Rename.W}
	if info.Size, info.XXHash, err = x.commit(writeShard(x, meta, repos, shardDocs)); err != nil {
		return err
	}
	for _, d := range docs {
		info.Postings += len(d.Postings)
		info.Renamed += len(d.Renamed)
		info.Tokens += int64(d.NumTokens())
	}
	info.Docs = len(docs)
	return nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func hexSum(h hash.Hash64) string { return fmt.Sprintf("%016x", h.Sum64()) }

// An indexFile is a file of the index written under path+".tmp" and renamed to
// path once whole, so that no reader ever sees half of it. Its writes are
// buffered, counted and hashed for the manifest.
type indexFile struct {
	*bufio.Writer
	path string
	f    *os.File
	h    hash.Hash64
	cw   *countWriter
}

func createIndexFile(path string) (*indexFile, error) {
	f, err := os.Create(path + ".tmp")
	if err != nil {
		return nil, err
	}
	x := &indexFile{path: path, f: f, h: xxhash.New()}
	x.cw = &countWriter{w: io.MultiWriter(f, x.h)}
	x.Writer = bufio.NewWriterSize(x.cw, 1<<20)
	return x, nil
}

// commit ends the file. If err, the error of writing it, is nil, it flushes,
// syncs and renames it into place; otherwise, or if that fails, it removes it. It
// returns the file's size and checksum (xxhash64, in hex).
func (x *indexFile) commit(err error) (size int64, sum string, _ error) {
	if err == nil {
		err = x.Flush()
	}
	if err == nil {
		err = x.f.Sync()
	}
	if cerr := x.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(x.path+".tmp", x.path)
	}
	if err != nil {
		os.Remove(x.path + ".tmp")
		return 0, "", fmt.Errorf("index: writing %s: %w", x.path, err)
	}
	return x.cw.n, hexSum(x.h), nil
}

// Finish writes the last shard and the manifest, whose Sources and Policy the
// caller may fill in m (nil is fine), and removes shards of earlier builds. It
// returns the manifest as written.
func (b *Builder) Finish(m *Manifest) (*Manifest, error) {
	b.flush()
	b.wait()
	if b.err != nil {
		b.Abort()
		return nil, b.err
	}
	if m == nil {
		m = &Manifest{}
	}
	m.Format, m.K, m.W, m.Tokenizer = FormatVersion, b.opts.Params.K, b.opts.Params.W, fingerprint.TokenizerVersion
	m.RenameK, m.RenameW = b.opts.Rename.K, b.opts.Rename.W
	m.Build, m.Created = b.build, time.Now().UTC().Truncate(time.Second)
	m.Shards, m.Repos, m.Licenses, m.Totals = b.shards, b.repos, b.licenses, b.totals
	if m.Shards == nil {
		m.Shards = []ShardInfo{}
	}
	if m.Repos == nil {
		m.Repos = []Repo{}
	}
	for _, s := range b.shards {
		m.Totals.Disk += s.Size
	}
	var err error
	if m.Allow, err = b.writeAllow(); err == nil {
		m.KGrams, err = b.writeKGrams()
	}
	if err != nil {
		b.Abort()
		return nil, err
	}
	if err := syncDir(b.dir); err != nil {
		return nil, err
	}
	if err := writeManifest(b.dir, m); err != nil {
		b.Abort()
		return nil, err
	}
	b.removeStale()
	return m, nil
}

// Abort removes the shards this build wrote. The previous index, if any, stays.
func (b *Builder) Abort() {
	b.wait()
	for _, s := range b.shards {
		os.Remove(filepath.Join(b.dir, s.File))
	}
	os.Remove(filepath.Join(b.dir, fmt.Sprintf("allow-%s.crs", b.build)))
	os.Remove(filepath.Join(b.dir, fmt.Sprintf("kgrams-%s.crs", b.build)))
}

// removeStale deletes shard files that the new manifest does not name. Readers that
// still map them keep their pages until they close them.
func (b *Builder) removeStale() {
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		return
	}
	keep := map[string]bool{}
	for _, s := range b.shards {
		keep[s.File] = true
	}
	keep[fmt.Sprintf("allow-%s.crs", b.build)] = true
	keep[fmt.Sprintf("kgrams-%s.crs", b.build)] = true
	for _, e := range entries {
		n := e.Name()
		if (strings.HasPrefix(n, "shard-") || strings.HasPrefix(n, "allow-") || strings.HasPrefix(n, "kgrams-")) && (strings.HasSuffix(n, ".crs") || strings.HasSuffix(n, ".crs.tmp")) && !keep[n] {
			os.Remove(filepath.Join(b.dir, n))
		}
	}
}
