package index

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// A k-gram filter holds every k-gram of the indexed code, not only the winnowed
// ones, in a blocked Bloom filter: one 512-bit block per k-gram, so a query costs
// one cache line. A run of the output can only become a match if each of its
// k-grams is in the corpus; once the newest k-gram is known absent, the text before
// it can go to the client. That shortens the proxy's holdback from t-1 tokens to
// about k on text that copies nothing. A false "present" only holds text back a
// little longer; the filter never says "absent" of a k-gram the corpus has.
//
// It lives in kgrams-<build>.crs, a container with a JSON section kgrams.meta and
// the bit blocks, raw and mapped, in kgrams.bits.
type kgramFilter struct {
	bits   []byte // blocks of 64 bytes
	blocks uint64
}

// KGramInfo describes an index's k-gram filter in its manifest.
type KGramInfo struct {
	File   string `json:"file"`
	Size   int64  `json:"size"`
	XXHash string `json:"xxhash"`
	Blocks uint64 `json:"blocks"`
	// KGrams is how many k-grams went in, and FalsePositives the share of absent
	// k-grams the filter would call present at that load.
	KGrams         int64   `json:"kgrams"`
	FalsePositives float64 `json:"false_positives"`
}

const (
	secKGramMeta = "kgrams.meta"
	secKGramBits = "kgrams.bits"
	blockBits    = 512
	kgramProbes  = 7 // bits set per k-gram: near optimal at 8-12 bits a k-gram
)

// probes returns the block and the bit positions within it of a k-gram hash, which
// is already well mixed: the high half picks the block, the low half the bits.
func probes(h, blocks uint64, fn func(bit uint32)) uint64 {
	block := (h >> 32) * blocks >> 32
	h1, h2 := uint32(h), uint32(h>>16)|1
	for i := uint32(0); i < kgramProbes; i++ {
		fn((h1 + i*h2) % blockBits)
	}
	return block
}

// has reports whether the filter may hold k-gram hash h. It tests the bits probes
// sets, inline and one by one: a k-gram the filter lacks usually fails at the first.
func (f *kgramFilter) has(h uint64) bool {
	block := (h >> 32) * f.blocks >> 32
	b := f.bits[block*64 : block*64+64 : block*64+64]
	h1, h2 := uint32(h), uint32(h>>16)|1
	for i := uint32(0); i < kgramProbes; i++ {
		bit := (h1 + i*h2) % blockBits
		// Bit j of the block is bit j%64 of its little-endian word j/64: byte j/8.
		if b[bit/8]&(1<<(bit%8)) == 0 {
			return false
		}
	}
	return true
}

// kgramBuilder fills a filter from many goroutines.
type kgramBuilder struct {
	words  []uint64
	blocks uint64
	n      atomic.Int64
}

func newKGramBuilder(expected int64, bitsPer int) *kgramBuilder {
	blocks := uint64(max(1, (expected*int64(bitsPer)+blockBits-1)/blockBits))
	return &kgramBuilder{words: make([]uint64, blocks*8), blocks: blocks}
}

func (b *kgramBuilder) add(hs []uint64) {
	for _, h := range hs {
		var want [8]uint64
		block := probes(h, b.blocks, func(bit uint32) { want[bit/64] |= 1 << (bit % 64) })
		for w, m := range want {
			if m != 0 {
				atomic.OrUint64(&b.words[block*8+uint64(w)], m)
			}
		}
	}
	b.n.Add(int64(len(hs)))
}

// falsePositives estimates the filter's false positive rate from its fill.
func (b *kgramBuilder) falsePositives() float64 {
	set := 0
	for _, w := range b.words {
		for ; w != 0; w &= w - 1 {
			set++
		}
	}
	return math.Pow(float64(set)/float64(len(b.words)*64), kgramProbes)
}

// InitKGrams makes the build keep a filter of all k-grams, sized for about
// expected of them at bitsPer bits each. Call it before AddKGrams.
func (b *Builder) InitKGrams(expected int64, bitsPer int) {
	b.kgrams = newKGramBuilder(expected, bitsPer)
}

// AddKGrams adds k-gram hashes to the filter; it is safe for concurrent use, and a
// no-op without InitKGrams.
func (b *Builder) AddKGrams(hs []uint64) {
	if b.kgrams != nil {
		b.kgrams.add(hs)
	}
}

// writeKGrams writes the k-gram filter, if any.
func (b *Builder) writeKGrams() (*KGramInfo, error) {
	kb := b.kgrams
	if kb == nil {
		return nil, nil
	}
	info := &KGramInfo{File: fmt.Sprintf("kgrams-%s.crs", b.build), Blocks: kb.blocks, KGrams: kb.n.Load(), FalsePositives: kb.falsePositives()}
	meta, _ := json.Marshal(map[string]any{"blocks": kb.blocks, "probes": kgramProbes, "block_bits": blockBits})
	x, err := createIndexFile(filepath.Join(b.dir, info.File))
	if err != nil {
		return nil, err
	}
	c, err := newContainerWriter(x)
	if err == nil {
		err = c.add(secKGramMeta, codecRaw, meta)
	}
	if err == nil {
		bits := make([]byte, 8*len(kb.words))
		for i, w := range kb.words {
			binary.LittleEndian.PutUint64(bits[8*i:], w)
		}
		err = c.add(secKGramBits, codecRaw, bits)
	}
	if err == nil {
		err = c.close()
	}
	if info.Size, info.XXHash, err = x.commit(err); err != nil {
		return nil, err
	}
	return info, nil
}

// openKGrams maps and checks the k-gram filter an index's manifest names.
func (ix *Index) openKGrams(dir string, opts OpenOptions) error {
	k := ix.Manifest.KGrams
	data, err := mapFile(filepath.Join(dir, k.File))
	if err != nil {
		return fmt.Errorf("index: k-gram filter: %w", err)
	}
	ix.maps = append(ix.maps, data)
	if int64(len(data)) != k.Size || !opts.SkipChecksums && fmt.Sprintf("%016x", xxhash.Sum64(data)) != k.XXHash {
		return fmt.Errorf("index: k-gram filter %s: %w: size or checksum differs from the manifest's", k.File, ErrCorrupt)
	}
	c, err := parseContainer(data)
	if err == nil && !opts.SkipChecksums {
		err = c.verify()
	}
	var bits []byte
	if err == nil {
		bits, err = c.section(secKGramBits)
	}
	if err == nil && uint64(len(bits)) != k.Blocks*64 {
		err = corruptf("%s: %d bytes for %d blocks", secKGramBits, len(bits), k.Blocks)
	}
	if err != nil {
		return fmt.Errorf("index: k-gram filter %s: %w", k.File, err)
	}
	ix.kgrams = &kgramFilter{bits: ix.hugeCopy(bits, data), blocks: k.Blocks}
	return nil
}

// hugeCopy copies b, which lookups read at random, into memory backed by huge
// pages (see hugeSlice), and unmaps file, the mapping b came from.
func (ix *Index) hugeCopy(b, file []byte) []byte {
	m := hugeSlice[byte](len(b), &ix.maps)
	copy(m, b)
	for i, x := range ix.maps {
		if len(x) > 0 && len(file) > 0 && &x[0] == &file[0] {
			syscall.Munmap(x)
			ix.maps = append(ix.maps[:i], ix.maps[i+1:]...)
			break
		}
	}
	return m
}

// hugeSlice returns n zeroed Ts (a type without pointers) for data that lookups
// read at random: if they come to megabytes, in anonymous memory that the kernel
// is asked to back with 2 MiB pages (transparent huge pages, which Linux grants on
// request by default), mapped in mem for Close to unmap: a lookup then costs a
// cache miss but no TLB miss. Where mapping fails, and for small slices, the Go
// heap.
func hugeSlice[T uint32 | byte](n int, mem *[][]byte) []T {
	size := n * int(unsafe.Sizeof(T(0)))
	if size < 4<<20 {
		return make([]T, n)
	}
	m, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return make([]T, n)
	}
	syscall.Madvise(m, syscall.MADV_HUGEPAGE) // advice: without it, 4 KiB pages
	*mem = append(*mem, m)
	return unsafe.Slice((*T)(unsafe.Pointer(&m[0])), n)
}

// HasKGramFilter reports whether the index has a filter of all its k-grams.
func (ix *Index) HasKGramFilter() bool { return ix.kgrams != nil }

// MayHaveKGram reports whether k-gram hash h may occur in the indexed code: false
// only when it certainly does not. Without a filter it is always true.
func (ix *Index) MayHaveKGram(h uint64) bool { return ix.kgrams == nil || ix.kgrams.has(h) }
