package index

import (
	"bytes"
	"testing"
)

// FuzzParseShard feeds arbitrary bytes to the shard reader: it must return an
// error or a shard whose postings and documents stay within bounds, never panic.
func FuzzParseShard(f *testing.F) {
	f.Add(exampleShardBytes(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		readAll(data, false)
	})
}

// FuzzShardSections replaces one section of a valid shard with arbitrary bytes and
// re-seals the file with valid checksums, so that the fuzzer reaches the decoders
// behind the checksums.
func FuzzShardSections(f *testing.F) {
	base := exampleShardBytes(f)
	c, err := parseContainer(base)
	if err != nil {
		f.Fatal(err)
	}
	for i, tag := range c.order {
		sec, _ := c.section(tag)
		f.Add(uint8(i), sec)
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		var buf bytes.Buffer
		cw, _ := newContainerWriter(&buf)
		for i, tag := range c.order {
			s := c.toc[tag]
			sec, _ := c.section(tag)
			if i == int(which)%len(c.order) {
				sec = data
			}
			cw.add(tag, s.codec, sec)
		}
		cw.close()
		readAll(buf.Bytes(), true)
	})
}

// readAll reads a shard the way a reader does and touches every posting's
// per-token data: an error is fine, an access out of bounds is not.
func readAll(data []byte, verify bool) {
	s, err := parseShard("fuzz", data, verify)
	if err != nil {
		return
	}
	_, docs, pos, _, err := s.postings(true)
	if err != nil {
		return
	}
	for i := range docs {
		d := s.docs[docs[i]]
		_ = s.tokens[2*(d.tokOff+int(pos[i]))]
		lineTable(s.lines[d.linesOff:d.linesOff+d.linesLen]).lines(0, int(pos[i]))
	}
	s.check()
}
