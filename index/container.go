package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cespare/xxhash/v2"
	"github.com/klauspost/compress/zstd"
)

// A shard file is a header, a sequence of sections, a table of contents (TOC) and a
// fixed-size footer; FORMAT.md gives the layout byte by byte.
const (
	shardMagic  = "CLRSHARD"
	footerMagic = "CLRSHEND"
	// FormatVersion is the version of the shard layout this package writes.
	FormatVersion = 1
	// minReaderVersion is the oldest reader that can read what this package writes.
	minReaderVersion = 1
	headerSize       = 16 // magic, format version, min reader version
	footerSize       = 32 // TOC offset, TOC length, TOC checksum, magic
)

// Section codecs.
const (
	codecRaw  = 0
	codecZstd = 1
)

// ErrCorrupt is wrapped by every error about a shard's bytes: a bad checksum, a
// truncated file, an impossible value.
var ErrCorrupt = errors.New("corrupt shard")

// ErrVersion is wrapped by the error for a shard written by a newer, incompatible
// version of cleanroom.
var ErrVersion = errors.New("unsupported shard format version")

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// section is one TOC entry.
type section struct {
	tag      string
	codec    uint8
	off      uint64 // of the stored bytes, from the start of the file
	stored   uint64 // length on disk
	raw      uint64 // length once decoded
	checksum uint64 // xxhash64 of the stored bytes
}

// containerWriter writes sections to w, then the TOC and footer on close.
type containerWriter struct {
	w    io.Writer
	off  uint64
	toc  []section
	zenc *zstd.Encoder
}

func newContainerWriter(w io.Writer) (*containerWriter, error) {
	cw := &containerWriter{w: w}
	var h [headerSize]byte
	copy(h[:8], shardMagic)
	binary.LittleEndian.PutUint32(h[8:], FormatVersion)
	binary.LittleEndian.PutUint32(h[12:], minReaderVersion)
	return cw, cw.write(h[:])
}

func (cw *containerWriter) write(b []byte) error {
	n, err := cw.w.Write(b)
	cw.off += uint64(n)
	return err
}

// add writes one section. Compressible sections are stored with zstd; sections that
// the reader accesses at random (and that do not compress) are stored raw.
func (cw *containerWriter) add(tag string, codec uint8, data []byte) error {
	stored := data
	if codec == codecZstd {
		if cw.zenc == nil {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1))
			if err != nil {
				return err
			}
			cw.zenc = enc
		}
		stored = cw.zenc.EncodeAll(data, nil)
	}
	s := section{tag: tag, codec: codec, off: cw.off, stored: uint64(len(stored)), raw: uint64(len(data)),
		checksum: xxhash.Sum64(stored)}
	cw.toc = append(cw.toc, s)
	return cw.write(stored)
}

// close writes the TOC and the footer.
func (cw *containerWriter) close() error {
	if cw.zenc != nil {
		cw.zenc.Close()
	}
	var toc []byte
	toc = binary.AppendUvarint(toc, uint64(len(cw.toc)))
	for _, s := range cw.toc {
		toc = binary.AppendUvarint(toc, uint64(len(s.tag)))
		toc = append(toc, s.tag...)
		toc = append(toc, s.codec)
		toc = binary.LittleEndian.AppendUint64(toc, s.off)
		toc = binary.LittleEndian.AppendUint64(toc, s.stored)
		toc = binary.LittleEndian.AppendUint64(toc, s.raw)
		toc = binary.LittleEndian.AppendUint64(toc, s.checksum)
	}
	tocOff := cw.off
	if err := cw.write(toc); err != nil {
		return err
	}
	var f [footerSize]byte
	binary.LittleEndian.PutUint64(f[0:], tocOff)
	binary.LittleEndian.PutUint64(f[8:], uint64(len(toc)))
	binary.LittleEndian.PutUint64(f[16:], xxhash.Sum64(toc))
	copy(f[24:], footerMagic)
	return cw.write(f[:])
}

// container is a parsed shard file held in memory (usually mapped).
type container struct {
	data    []byte
	version uint32
	toc     map[string]section
	order   []string
}

// parseContainer checks the header, footer and TOC of a shard file. It does not
// check section checksums; verify does.
func parseContainer(data []byte) (*container, error) {
	if len(data) < headerSize+footerSize {
		return nil, corruptf("file of %d bytes is too short to be a shard", len(data))
	}
	if string(data[:8]) != shardMagic {
		return nil, corruptf("not a cleanroom shard (bad magic)")
	}
	version := binary.LittleEndian.Uint32(data[8:])
	minReader := binary.LittleEndian.Uint32(data[12:])
	if minReader > FormatVersion {
		return nil, fmt.Errorf("%w: shard format %d needs a reader of version %d, this is %d; upgrade cleanroom or rebuild the index",
			ErrVersion, version, minReader, FormatVersion)
	}
	f := data[len(data)-footerSize:]
	if string(f[24:]) != footerMagic {
		return nil, corruptf("bad footer magic: the file is truncated or not a shard")
	}
	tocOff := binary.LittleEndian.Uint64(f[0:])
	tocLen := binary.LittleEndian.Uint64(f[8:])
	end := uint64(len(data) - footerSize)
	if tocOff < headerSize || tocOff > end || tocLen != end-tocOff {
		return nil, corruptf("table of contents at %d+%d is outside the file", tocOff, tocLen)
	}
	toc := data[tocOff:end]
	if xxhash.Sum64(toc) != binary.LittleEndian.Uint64(f[16:]) {
		return nil, corruptf("table of contents checksum mismatch")
	}
	c := &container{data: data, version: version, toc: map[string]section{}}
	r := &byteReader{b: toc}
	n := r.uvarint()
	for i := uint64(0); i < n && r.err == nil; i++ {
		var s section
		s.tag = string(r.bytes(r.uvarint()))
		s.codec = r.byte1()
		s.off, s.stored, s.raw, s.checksum = r.u64(), r.u64(), r.u64(), r.u64()
		if r.err != nil {
			break
		}
		if s.off < headerSize || s.off > tocOff || s.stored > tocOff-s.off {
			return nil, corruptf("section %q at %d+%d is outside the file", s.tag, s.off, s.stored)
		}
		if s.codec != codecRaw && s.codec != codecZstd {
			return nil, corruptf("section %q has unknown codec %d", s.tag, s.codec)
		}
		if s.codec == codecRaw && s.raw != s.stored {
			return nil, corruptf("raw section %q stores %d bytes, claims %d", s.tag, s.stored, s.raw)
		}
		c.toc[s.tag] = s
		c.order = append(c.order, s.tag)
	}
	if r.err != nil {
		return nil, corruptf("table of contents: %v", r.err)
	}
	return c, nil
}

// verify checks the checksum of every section.
func (c *container) verify() error {
	for _, tag := range c.order {
		s := c.toc[tag]
		if xxhash.Sum64(c.stored(s)) != s.checksum {
			return corruptf("section %q: checksum mismatch", tag)
		}
	}
	return nil
}

func (c *container) stored(s section) []byte { return c.data[s.off : s.off+s.stored] }

// maxSectionSize bounds a decoded section so that a corrupt length cannot make the
// reader allocate without limit.
const maxSectionSize = 16 << 30

var zdecoders = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxSectionSize))
	if err != nil {
		panic(err)
	}
	return d
}}

// section returns the decoded bytes of a section; a raw section is returned in
// place, without copying. A missing section is an error.
func (c *container) section(tag string) ([]byte, error) {
	s, ok := c.toc[tag]
	if !ok {
		return nil, corruptf("section %q is missing", tag)
	}
	b := c.stored(s)
	if s.codec == codecRaw {
		return b, nil
	}
	if s.raw > maxSectionSize {
		return nil, corruptf("section %q claims %d bytes", tag, s.raw)
	}
	d := zdecoders.Get().(*zstd.Decoder)
	defer zdecoders.Put(d)
	out, err := d.DecodeAll(b, make([]byte, 0, s.raw))
	if err != nil {
		return nil, corruptf("section %q: %v", tag, err)
	}
	if uint64(len(out)) != s.raw {
		return nil, corruptf("section %q decodes to %d bytes, TOC says %d", tag, len(out), s.raw)
	}
	return out, nil
}

// byteReader decodes little-endian and varint fields, remembering the first error.
type byteReader struct {
	b   []byte
	err error
}

var errShort = errors.New("unexpected end of data")

func (r *byteReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.b = nil
}

func (r *byteReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail(errShort)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *byteReader) u64() uint64 {
	if len(r.b) < 8 {
		r.fail(errShort)
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *byteReader) byte1() byte {
	if len(r.b) < 1 {
		r.fail(errShort)
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *byteReader) bytes(n uint64) []byte {
	if uint64(len(r.b)) < n {
		r.fail(errShort)
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *byteReader) str() string { return string(r.bytes(r.uvarint())) }

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}
