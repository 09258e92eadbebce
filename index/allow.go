package index

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cespare/xxhash/v2"
)

// An allow set holds the fingerprints of a permissive reference corpus (Go's tree,
// npm packages, a company's own code): code that common there is boilerplate, not
// evidence of copying, and a query's fingerprints found in it are not looked up.
// It lives in its own file of the index directory, a container like a shard's with
// the sections allow.hash and allow.rhash (rename-robust), each the sorted distinct
// hashes as uvarint deltas, zstd-compressed.
type allowSet struct {
	exact, rename []uint64
}

// AllowInfo describes an index's allow set in its manifest.
type AllowInfo struct {
	File         string   `json:"file"`
	Size         int64    `json:"size"`
	XXHash       string   `json:"xxhash"`
	Fingerprints int      `json:"fingerprints"`
	Renamed      int      `json:"renamed,omitempty"`
	Sources      []string `json:"sources"`
}

const (
	secAllow       = "allow.hash"
	secAllowRename = "allow.rhash"
)

func (a *allowSet) has(h uint64, rename bool) bool {
	s := a.exact
	if rename {
		s = a.rename
	}
	_, ok := slices.BinarySearch(s, h)
	return ok
}

// AddAllow adds fingerprint hashes of a permissive reference corpus, and their
// rename-robust counterparts, to the allow set the build writes.
func (b *Builder) AddAllow(source string, exact, renamed []uint64) {
	b.allowExact = append(b.allowExact, exact...)
	b.allowRename = append(b.allowRename, renamed...)
	b.allowSources = append(b.allowSources, source)
}

// writeAllow writes the allow set, if any, and describes it.
func (b *Builder) writeAllow() (*AllowInfo, error) {
	if b.allowSources == nil {
		return nil, nil
	}
	slices.Sort(b.allowExact)
	slices.Sort(b.allowRename)
	exact, rename := slices.Compact(b.allowExact), slices.Compact(b.allowRename)
	info := &AllowInfo{File: fmt.Sprintf("allow-%s.crs", b.build), Fingerprints: len(exact), Renamed: len(rename), Sources: b.allowSources}
	x, err := createIndexFile(filepath.Join(b.dir, info.File))
	if err != nil {
		return nil, err
	}
	c, err := newContainerWriter(x)
	if err == nil {
		err = c.add(secAllow, codecZstd, deltas(exact))
	}
	if err == nil {
		err = c.add(secAllowRename, codecZstd, deltas(rename))
	}
	if err == nil {
		err = c.close()
	}
	if info.Size, info.XXHash, err = x.commit(err); err != nil {
		return nil, err
	}
	return info, nil
}

func deltas(hs []uint64) []byte {
	var out []byte
	var prev uint64
	for _, h := range hs {
		out = binary.AppendUvarint(out, h-prev)
		prev = h
	}
	return out
}

// readAllow reads and checks the allow set an index's manifest names.
func readAllow(dir string, m *Manifest) (allowSet, error) {
	a := m.Allow
	data, err := os.ReadFile(filepath.Join(dir, a.File))
	if err != nil {
		return allowSet{}, fmt.Errorf("index: allow set: %w", err)
	}
	if int64(len(data)) != a.Size || fmt.Sprintf("%016x", xxhash.Sum64(data)) != a.XXHash {
		return allowSet{}, fmt.Errorf("index: allow set %s: %w: size or checksum differs from the manifest's", a.File, ErrCorrupt)
	}
	c, err := parseContainer(data)
	if err == nil {
		err = c.verify()
	}
	if err != nil {
		return allowSet{}, fmt.Errorf("index: allow set %s: %w", a.File, err)
	}
	var s allowSet
	if s.exact, err = readDeltas(c, secAllow, a.Fingerprints); err == nil {
		s.rename, err = readDeltas(c, secAllowRename, a.Renamed)
	}
	if err != nil {
		return allowSet{}, fmt.Errorf("index: allow set %s: %w", a.File, err)
	}
	return s, nil
}

func readDeltas(c *container, tag string, n int) ([]uint64, error) {
	b, err := c.section(tag)
	if err != nil {
		return nil, err
	}
	return undeltas(b, n, tag)
}

// undeltas decodes n sorted distinct hashes encoded by deltas; what names them in
// errors.
func undeltas(b []byte, n int, what string) ([]uint64, error) {
	if n < 0 || n > len(b) {
		return nil, corruptf("%s: %d hashes in %d bytes", what, n, len(b))
	}
	out := make([]uint64, n)
	var h uint64
	for i := range out {
		d, k := binary.Uvarint(b)
		if k <= 0 || (i > 0 && d == 0) || h+d < h {
			return nil, corruptf("%s: entry %d of %d is bad", what, i, n)
		}
		h += d
		out[i] = h
		b = b[k:]
	}
	if len(b) != 0 {
		return nil, corruptf("%s: %d trailing bytes", what, len(b))
	}
	return out, nil
}
