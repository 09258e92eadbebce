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

	hashes []uint64 // ascending
	refs   []uint64 // doc<<32 | token position, parallel to hashes
	dir    []uint32 // dir[b] = first entry whose hash has top bits b
	shift  uint

	closeOnce sync.Once
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
}

// Open opens the index in dir. It checks every shard against the manifest and its
// checksums, so a damaged index is an error here, never a wrong answer later.
func Open(dir string, opts OpenOptions) (*Index, error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	ix := &Index{Manifest: m}
	type cols struct {
		hashes    []uint64
		docs, pos []uint32
	}
	var all []cols
	base := 0
	for i, si := range m.Shards {
		data, err := mapFile(filepath.Join(dir, si.File))
		if err != nil {
			ix.Close()
			return nil, fmt.Errorf("index: shard %s: %w", si.File, err)
		}
		ix.maps = append(ix.maps, data)
		if int64(len(data)) != si.Size {
			ix.Close()
			return nil, fmt.Errorf("index: shard %s: %w: %d bytes, manifest says %d", si.File, ErrCorrupt, len(data), si.Size)
		}
		if !opts.SkipChecksums && fmt.Sprintf("%016x", xxhash.Sum64(data)) != si.XXHash {
			ix.Close()
			return nil, fmt.Errorf("index: shard %s: %w: checksum differs from the manifest's", si.File, ErrCorrupt)
		}
		s, err := parseShard(si.File, data, !opts.SkipChecksums)
		if err != nil {
			ix.Close()
			return nil, fmt.Errorf("index: shard %s: %w", si.File, err)
		}
		if s.meta.params() != m.Params() || s.meta.Tokenizer != m.Tokenizer {
			ix.Close()
			return nil, fmt.Errorf("index: shard %s: %w: built with %v tokenizer %d, the manifest says %v tokenizer %d",
				si.File, ErrParams, s.meta.params(), s.meta.Tokenizer, m.Params(), m.Tokenizer)
		}
		h, d, p, _, err := s.postings(false)
		if err != nil {
			ix.Close()
			return nil, fmt.Errorf("index: shard %s: %w", si.File, err)
		}
		for j := range d {
			d[j] += uint32(base)
		}
		all = append(all, cols{h, d, p})
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
	// Merge the shards' sorted columns into one table.
	n := 0
	for _, c := range all {
		n += len(c.hashes)
	}
	ix.hashes = make([]uint64, 0, n)
	ix.refs = make([]uint64, 0, n)
	heads := make([]int, len(all))
	for len(ix.hashes) < n {
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
			ix.hashes = append(ix.hashes, c.hashes[k])
			ix.refs = append(ix.refs, uint64(c.docs[k])<<32|uint64(c.pos[k]))
		}
		heads[best] = end
	}
	ix.buildDir()
	return ix, nil
}

// buildDir indexes the table by the top bits of the hash, about four entries per
// bucket, so that a lookup is one directory read and a short scan.
func (ix *Index) buildDir() {
	nb := 1
	if n := len(ix.hashes) / 4; n > 1 {
		nb = bits.Len(uint(n))
	}
	ix.shift = uint(64 - nb)
	ix.dir = make([]uint32, 1<<nb+1)
	j := 0
	for b := range 1 << nb {
		for j < len(ix.hashes) && ix.hashes[j]>>ix.shift < uint64(b) {
			j++
		}
		ix.dir[b] = uint32(j)
	}
	ix.dir[1<<nb] = uint32(len(ix.hashes))
}

// lookup returns the range of table entries with hash h.
func (ix *Index) lookup(h uint64) (lo, hi int) {
	if len(ix.hashes) == 0 {
		return 0, 0
	}
	b := h >> ix.shift
	lo, hi = int(ix.dir[b]), int(ix.dir[b+1])
	for lo < hi && ix.hashes[lo] < h {
		lo++
	}
	end := lo
	for end < hi && ix.hashes[end] == h {
		end++
	}
	return lo, end
}

// Count returns how many postings the index holds for fingerprint hash h.
func (ix *Index) Count(h uint64) int {
	lo, hi := ix.lookup(h)
	return hi - lo
}

// Params returns the fingerprint parameters queries must use.
func (ix *Index) Params() fingerprint.Params { return ix.Manifest.Params() }

// NumDocs returns the number of documents.
func (ix *Index) NumDocs() int { return len(ix.docs) }

// NumPostings returns the number of postings.
func (ix *Index) NumPostings() int { return len(ix.hashes) }

// MemoryBytes estimates the heap the index holds (the mapped shard files aside).
func (ix *Index) MemoryBytes() int64 {
	return int64(len(ix.hashes))*16 + int64(len(ix.dir))*4 + int64(len(ix.docs))*(8+96)
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
