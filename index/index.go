package index

import (
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/cespare/xxhash/v2"

	"cleanroom/fingerprint"
)

// An Index is an open index directory: the postings of all its shards merged into
// one table in memory, and the shard files mapped for the per-token data that
// extends matches. An Index is immutable and safe for concurrent use.
type Index struct {
	Manifest *Manifest

	shards []*shard
	maps   [][]byte
	docs   []docRef // global document number -> shard and local number

	exact  table
	rename table // empty unless the index has rename-robust fingerprints
	allow  allowSet
	kgrams *kgramFilter // nil unless the index has one

	closeOnce sync.Once
}

// A table maps fingerprint hashes to postings: all shards' postings merged and
// sorted by hash, with a directory on the hashes' top bits. It keeps 10 bytes a
// posting: the hash's low 32 bits (the directory implies the top ones; the bits
// between are dropped, and the rare false hit they allow fails the token check
// that every hit goes through) and the document and position packed in 6.
type table struct {
	lows  []uint32 // low 32 bits of the hash, in hash order
	refs  []byte   // per posting, 6 bytes: document (24 bits), position (24 bits)
	dir   []uint32 // dir[b] = first posting whose hash has top bits b
	shift uint
	n     int
}

// Limits of the packed references.
const (
	maxDocs     = 1 << 24
	maxPosition = 1 << 24
)

func (t *table) ref(i int) (doc, pos int) {
	b := t.refs[6*i : 6*i+6]
	v := uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 | uint64(b[4])<<32 | uint64(b[5])<<40
	return int(v >> 24), int(v & (1<<24 - 1))
}

// columns are one shard's postings as the shard stores them.
type columns struct {
	hashes    []uint64
	docs, pos []uint32
}

type docRef struct {
	shard int32
	local int32
}

// OpenOptions configure Open.
type OpenOptions struct {
	// SkipChecksums skips checking the whole-file checksums at open; section
	// structure is always checked. Only for tools that check them otherwise.
	SkipChecksums bool
	// SkipRename leaves the rename-robust fingerprints on disk: a reader that only
	// matches exactly (the proxy) saves their memory.
	SkipRename bool
}

// Open opens the index in dir. It checks every shard against the manifest and its
// checksums, so a damaged index is an error here, never a wrong answer later.
func Open(dir string, opts OpenOptions) (*Index, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	ix := &Index{Manifest: m}
	_, hasRename := m.RenameParams()
	loadRename := hasRename && !opts.SkipRename
	var exact, rename []columns
	base := 0
	for i, si := range m.Shards {
		s, err := ix.openShard(dir, si, opts)
		if err != nil {
			ix.Close()
			return nil, fmt.Errorf("index: shard %s: %w", si.File, err)
		}
		if (s.meta.RK > 0) != hasRename || hasRename && s.meta.renameParams() != (fingerprint.Params{K: m.RenameK, W: m.RenameW}) {
			ix.Close()
			return nil, fmt.Errorf("index: shard %s: %w: its rename-robust parameters (k=%d w=%d) are not the manifest's", si.File, ErrParams, s.meta.RK, s.meta.RW)
		}
		h, d, p, _, err := s.postings(false)
		if err != nil {
			ix.Close()
			return nil, fmt.Errorf("index: shard %s: %w", si.File, err)
		}
		exact = append(exact, columns{h, offset(d, base), p})
		if loadRename {
			h, d, p, err := s.renamedPostings()
			if err != nil {
				ix.Close()
				return nil, fmt.Errorf("index: shard %s: %w", si.File, err)
			}
			rename = append(rename, columns{h, offset(d, base), p})
		}
		for j := range s.docs {
			ix.docs = append(ix.docs, docRef{shard: int32(i), local: int32(j)})
		}
		base += len(s.docs)
		ix.shards = append(ix.shards, s)
	}
	if base >= 1<<32 {
		ix.Close()
		return nil, errors.New("index: more than 2^32 documents")
	}
	if ix.exact, err = mergeTable(exact); err == nil {
		ix.rename, err = mergeTable(rename)
	}
	if err != nil {
		ix.Close()
		return nil, err
	}
	if m.Allow != nil {
		if ix.allow, err = readAllow(dir, m); err != nil {
			ix.Close()
			return nil, err
		}
	}
	if m.KGrams != nil {
		if err := ix.openKGrams(dir, opts); err != nil {
			ix.Close()
			return nil, err
		}
	}
	return ix, nil
}

// openShard maps one shard and checks it against the manifest.
func (ix *Index) openShard(dir string, si ShardInfo, opts OpenOptions) (*shard, error) {
	data, err := mapFile(filepath.Join(dir, si.File))
	if err != nil {
		return nil, err
	}
	ix.maps = append(ix.maps, data)
	if int64(len(data)) != si.Size {
		return nil, fmt.Errorf("%w: %d bytes, manifest says %d", ErrCorrupt, len(data), si.Size)
	}
	if !opts.SkipChecksums && fmt.Sprintf("%016x", xxhash.Sum64(data)) != si.XXHash {
		return nil, fmt.Errorf("%w: checksum differs from the manifest's", ErrCorrupt)
	}
	s, err := parseShard(si.File, data, !opts.SkipChecksums)
	if err != nil {
		return nil, err
	}
	m := ix.Manifest
	if s.meta.params() != m.Params() || s.meta.Tokenizer != m.Tokenizer {
		return nil, fmt.Errorf("%w: built with %v tokenizer %d, the manifest says %v tokenizer %d",
			ErrParams, s.meta.params(), s.meta.Tokenizer, m.Params(), m.Tokenizer)
	}
	return s, nil
}

// offset adds base to every document number.
func offset(docs []uint32, base int) []uint32 {
	for j := range docs {
		docs[j] += uint32(base)
	}
	return docs
}

// mergeTable merges shards' sorted columns into one table.
func mergeTable(all []columns) (table, error) {
	var t table
	n := 0
	for _, c := range all {
		n += len(c.hashes)
	}
	t.n = n
	nb := 1
	if n/4 > 1 {
		nb = bits.Len(uint(n / 4))
	}
	t.shift = uint(64 - nb)
	// (On the Go heap, not in huge pages like the k-gram filter: lookups would
	// take a third less time there, but a proxy whose heap is only its garbage
	// collects so much more often that the gateway's throughput fell by 10%.)
	t.dir = make([]uint32, 1<<nb+1)
	t.lows = make([]uint32, 0, n)
	t.refs = make([]byte, 0, 6*n)
	heads := make([]int, len(all))
	bucket := 0 // the next directory entry to fill
	for len(t.lows) < n {
		best := -1
		for i, c := range all {
			if heads[i] < len(c.hashes) && (best < 0 || c.hashes[heads[i]] < all[best].hashes[heads[best]]) {
				best = i
			}
		}
		c, j := all[best], heads[best]
		// Copy the run of entries that stay below every other head in one go.
		end := j + 1
		limit := ^uint64(0)
		for i, o := range all {
			if i != best && heads[i] < len(o.hashes) && o.hashes[heads[i]] < limit {
				limit = o.hashes[heads[i]]
			}
		}
		for end < len(c.hashes) && c.hashes[end] <= limit {
			end++
		}
		for k := j; k < end; k++ {
			h, doc, pos := c.hashes[k], c.docs[k], c.pos[k]
			if doc >= maxDocs || pos >= maxPosition {
				return t, fmt.Errorf("index: document %d, position %d: more than 2^24", doc, pos)
			}
			for b := int(h >> t.shift); bucket <= b; bucket++ {
				t.dir[bucket] = uint32(len(t.lows))
			}
			t.lows = append(t.lows, uint32(h))
			v := uint64(doc)<<24 | uint64(pos)
			t.refs = append(t.refs, byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40))
		}
		heads[best] = end
	}
	for ; bucket < len(t.dir); bucket++ {
		t.dir[bucket] = uint32(n)
	}
	return t, nil
}

// lookup returns the range [lo, hi) of postings whose hash may be h: same top
// bits, same low 32 bits.
func (t *table) lookup(h uint64) (lo, hi int) {
	if t.n == 0 {
		return 0, 0
	}
	b := h >> t.shift
	lo, end := int(t.dir[b]), int(t.dir[b+1])
	low := uint32(h)
	for lo < end && t.lows[lo] != low {
		lo++
	}
	hi = lo
	for hi < end && t.lows[hi] == low {
		hi++
	}
	return lo, hi
}

// Count returns how many postings the index holds for fingerprint hash h.
func (ix *Index) Count(h uint64) int {
	lo, hi := ix.exact.lookup(h)
	return hi - lo
}

// Params returns the fingerprint parameters queries must use.
func (ix *Index) Params() fingerprint.Params { return ix.Manifest.Params() }

// NumDocs returns the number of documents.
func (ix *Index) NumDocs() int { return len(ix.docs) }

// NumPostings returns the number of postings.
func (ix *Index) NumPostings() int { return ix.exact.n }

// RenameParams returns the parameters of the index's rename-robust fingerprints,
// and whether it has any.
func (ix *Index) RenameParams() (fingerprint.Params, bool) { return ix.Manifest.RenameParams() }

// PostingBytes returns the heap the exact fingerprints' table holds: what a
// loaded index costs per fingerprint, the documents, the rename-robust table and
// the mapped files aside.
func (ix *Index) PostingBytes() int64 {
	t := &ix.exact
	return int64(len(t.lows))*4 + int64(len(t.refs)) + int64(len(t.dir))*4
}

// MemoryBytes estimates the heap the index holds (the mapped shard files aside).
func (ix *Index) MemoryBytes() int64 {
	n := int64(0)
	for _, t := range []*table{&ix.exact, &ix.rename} {
		n += int64(len(t.lows))*4 + int64(len(t.refs)) + int64(len(t.dir))*4
	}
	return n + int64(len(ix.allow.exact)+len(ix.allow.rename))*8 + int64(len(ix.docs))*(8+96)
}

// DocInfo describes an indexed document.
type DocInfo struct {
	Repo        *Repo
	Path        string
	License     string // SPDX expression, canonical (license.Canonical)
	LicenseFrom string
	// LicenseAsFound is the expression as the file or its repository's license
	// files state it, when that is not canonical ("GPL-2.0+"); "" when it is.
	LicenseAsFound string
	Lang           string
	Size           int64
	Tokens         int
}

// licenseAsFound returns the license expression as the file states it.
func (d *DocInfo) licenseAsFound() string {
	if d.LicenseAsFound != "" {
		return d.LicenseAsFound
	}
	return d.License
}

// Doc returns the description of document d.
func (ix *Index) Doc(d int) DocInfo {
	r := ix.docs[d]
	s := ix.shards[r.shard]
	sd := &s.docs[r.local]
	return DocInfo{Repo: &s.repos[sd.repo], Path: sd.path, License: sd.license, LicenseFrom: sd.from,
		LicenseAsFound: sd.licenseAsFound, Lang: sd.lang, Size: sd.size, Tokens: sd.ntok}
}

// checks returns the token check values of document d.
func (ix *Index) checks(d int) checkSeq {
	r := ix.docs[d]
	s := ix.shards[r.shard]
	sd := &s.docs[r.local]
	return checkSeq(s.tokens[2*sd.tokOff : 2*(sd.tokOff+sd.ntok)])
}

// isIdent reports whether token i of document d is an identifier; only for an index
// with rename-robust fingerprints.
func (ix *Index) isIdent(d, i int) bool {
	r := ix.docs[d]
	s := ix.shards[r.shard]
	sd := &s.docs[r.local]
	return s.idents[sd.identsOff+i/8]&(1<<(i%8)) != 0
}

// lineTable returns the line table of document d.
func (ix *Index) lineTable(d int) lineTable {
	r := ix.docs[d]
	s := ix.shards[r.shard]
	sd := &s.docs[r.local]
	return lineTable(s.lines[sd.linesOff : sd.linesOff+sd.linesLen])
}

// Close unmaps the shard files. The Index must not be used afterwards.
func (ix *Index) Close() error {
	var err error
	ix.closeOnce.Do(func() {
		for _, m := range ix.maps {
			if e := syscall.Munmap(m); e != nil && err == nil {
				err = e
			}
		}
		ix.maps = nil
	})
	return err
}

// mapFile maps a file read-only. Shard files are written once, renamed into place,
// and never modified, so the mapping cannot change under the reader.
func mapFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size == 0 {
		return nil, fmt.Errorf("%w: empty file", ErrCorrupt)
	}
	if size != int64(int(size)) {
		return nil, errors.New("file too large to map")
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}
