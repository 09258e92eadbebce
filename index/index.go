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

	closeOnce sync.Once
}

// A table maps fingerprint hashes to postings: all shards' postings merged and
// sorted, with a directory on the hashes' top bits.
type table struct {
	hashes []uint64 // ascending
	refs   []uint64 // doc<<32 | token position, parallel to hashes
	dir    []uint32 // dir[b] = first entry whose hash has top bits b
	shift  uint
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
	ix.exact = mergeTable(exact)
	ix.rename = mergeTable(rename)
	if m.Allow != nil {
		if ix.allow, err = readAllow(dir, m); err != nil {
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
func mergeTable(all []columns) table {
	var t table
	n := 0
	for _, c := range all {
		n += len(c.hashes)
	}
	t.hashes = make([]uint64, 0, n)
	t.refs = make([]uint64, 0, n)
	heads := make([]int, len(all))
	for len(t.hashes) < n {
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
			t.hashes = append(t.hashes, c.hashes[k])
			t.refs = append(t.refs, uint64(c.docs[k])<<32|uint64(c.pos[k]))
		}
		heads[best] = end
	}
	t.buildDir()
	return t
}

// buildDir indexes the table by the top bits of the hash, about four entries per
// bucket, so that a lookup is one directory read and a short scan.
func (t *table) buildDir() {
	nb := 1
	if n := len(t.hashes) / 4; n > 1 {
		nb = bits.Len(uint(n))
	}
	t.shift = uint(64 - nb)
	t.dir = make([]uint32, 1<<nb+1)
	j := 0
	for b := range 1 << nb {
		for j < len(t.hashes) && t.hashes[j]>>t.shift < uint64(b) {
			j++
		}
		t.dir[b] = uint32(j)
	}
	t.dir[1<<nb] = uint32(len(t.hashes))
}

// lookup returns the postings of hash h.
func (t *table) lookup(h uint64) []uint64 {
	if len(t.hashes) == 0 {
		return nil
	}
	b := h >> t.shift
	lo, hi := int(t.dir[b]), int(t.dir[b+1])
	for lo < hi && t.hashes[lo] < h {
		lo++
	}
	end := lo
	for end < hi && t.hashes[end] == h {
		end++
	}
	return t.refs[lo:end]
}

// Count returns how many postings the index holds for fingerprint hash h.
func (ix *Index) Count(h uint64) int { return len(ix.exact.lookup(h)) }

// Params returns the fingerprint parameters queries must use.
func (ix *Index) Params() fingerprint.Params { return ix.Manifest.Params() }

// NumDocs returns the number of documents.
func (ix *Index) NumDocs() int { return len(ix.docs) }

// NumPostings returns the number of postings.
func (ix *Index) NumPostings() int { return len(ix.exact.hashes) }

// RenameParams returns the parameters of the index's rename-robust fingerprints,
// and whether it has any.
func (ix *Index) RenameParams() (fingerprint.Params, bool) { return ix.Manifest.RenameParams() }

// MemoryBytes estimates the heap the index holds (the mapped shard files aside).
func (ix *Index) MemoryBytes() int64 {
	n := int64(0)
	for _, t := range []*table{&ix.exact, &ix.rename} {
		n += int64(len(t.hashes))*16 + int64(len(t.dir))*4
	}
	return n + int64(len(ix.allow.exact)+len(ix.allow.rename))*8 + int64(len(ix.docs))*(8+96)
}

// DocInfo describes an indexed document.
type DocInfo struct {
	Repo        *Repo
	Path        string
	License     string
	LicenseFrom string
	Lang        string
	Size        int64
	Tokens      int
}

// Doc returns the description of document d.
func (ix *Index) Doc(d int) DocInfo {
	r := ix.docs[d]
	s := ix.shards[r.shard]
	sd := &s.docs[r.local]
	return DocInfo{Repo: &s.repos[sd.repo], Path: sd.path, License: sd.license, LicenseFrom: sd.from,
		Lang: sd.lang, Size: sd.size, Tokens: sd.ntok}
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
