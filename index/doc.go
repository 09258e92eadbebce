package index

import (
	"encoding/binary"

	"cleanroom/corpus/license"
	"cleanroom/fingerprint"
)

// A Doc is one source file, fingerprinted, on its way into an index.
type Doc struct {
	Repo        int    // index of its repository among the Builder's repositories
	Path        string // slash path within the repository
	License     string // SPDX expression that governs the file
	LicenseFrom string // where License came from: "spdx-line", "notice" or "repository"
	// LicenseAsFound is the expression as the file or its repository's license files
	// state it, when that is not canonical ("GPL-2.0+" for GPL-2.0-or-later); "" when
	// it is. Builder.Add puts License in canonical form (license.Canonical) and keeps
	// the text as found here.
	LicenseAsFound string
	Lang           string
	Size           int64 // bytes of source text

	// Checks holds two bytes per token, the low 16 bits of its hash, little-endian.
	// A match found by a fingerprint is extended token by token by comparing them,
	// which gives its exact length without storing the source text; two different
	// tokens pass for equal once in 65536 comparisons.
	Checks   []byte
	Lines    []byte // line table: which token starts which line (see lineTable)
	Postings []Posting

	// For rename-robust matching (see fingerprint.RenameHash), when the build asks
	// for it: Idents has one bit per token, set for identifiers (a token's
	// rename-robust check value follows from it and its exact one), and Renamed
	// holds the rename-robust fingerprints.
	Idents  []byte
	Renamed []Posting
}

// A Posting is one fingerprint of a document.
type Posting struct {
	Hash uint64
	Pos  uint32 // token index of the k-gram's first token
	Line uint32 // line of that token
}

// AddRenamed adds the rename-robust fingerprints of the text d was made from.
func (d *Doc) AddRenamed(toks []fingerprint.Token, fps []fingerprint.Fingerprint) {
	d.Idents = make([]byte, (len(toks)+7)/8)
	for i := range toks {
		if toks[i].Kind == fingerprint.Ident {
			d.Idents[i/8] |= 1 << (i % 8)
		}
	}
	d.Renamed = postings(toks, fps)
}

func postings(toks []fingerprint.Token, fps []fingerprint.Fingerprint) []Posting {
	ps := make([]Posting, len(fps))
	for i, f := range fps {
		ps[i] = Posting{Hash: f.Hash, Pos: uint32(f.Pos), Line: uint32(toks[f.Pos].Line)}
	}
	return ps
}

// NumTokens returns the number of tokens of d.
func (d *Doc) NumTokens() int { return len(d.Checks) / 2 }

// checkSeq is a sequence of token check values, two bytes each.
type checkSeq []byte

func (c checkSeq) len() int { return len(c) / 2 }

func (c checkSeq) at(i int) uint16 { return binary.LittleEndian.Uint16(c[2*i:]) }

// appendCheck appends the check value of a token hash.
func appendCheck(c checkSeq, h uint64) checkSeq {
	return binary.LittleEndian.AppendUint16(c, uint16(h))
}

// NewDoc makes the indexable form of a fingerprinted text. Metadata is left to the
// caller.
func NewDoc(toks []fingerprint.Token, fps []fingerprint.Fingerprint) *Doc {
	d := &Doc{Checks: make([]byte, 0, 2*len(toks))}
	for _, t := range toks {
		d.Checks = appendCheck(d.Checks, t.Hash)
	}
	d.Lines = appendLineTable(nil, toks)
	d.Postings = postings(toks, fps)
	return d
}

// A line table maps token indexes to lines. It is a sequence of uvarint pairs
// (tokens since the previous entry, lines since the previous entry), one pair for
// each token that starts on a later line than the token before it (the line before
// the first token is 1). Tokens are many, lines fewer, and both deltas are small.
func appendLineTable(b []byte, toks []fingerprint.Token) []byte {
	line, last := int32(1), 0
	for i, t := range toks {
		if t.Line > line {
			b = binary.AppendUvarint(b, uint64(i-last))
			b = binary.AppendUvarint(b, uint64(t.Line-line))
			line, last = t.Line, i
		}
	}
	return b
}

// lineTable answers line queries for one document.
type lineTable []byte

// lines returns the lines of tokens a and b, a <= b; a corrupt table yields lines
// that are wrong but never a panic.
func (lt lineTable) lines(a, b int) (la, lb int) {
	line, tok := 1, 0
	la = -1
	for p := []byte(lt); len(p) > 0; {
		td, n := binary.Uvarint(p)
		if n <= 0 {
			break
		}
		ld, m := binary.Uvarint(p[n:])
		if m <= 0 {
			break
		}
		p = p[n+m:]
		tok += int(td)
		if la < 0 && tok > a {
			la = line
		}
		if tok > b {
			break
		}
		line += int(ld)
	}
	if la < 0 {
		la = line
	}
	return la, line
}

// AppendBinary appends the encoding of d to b, so that a document can wait on disk
// until its license is decided. It implements encoding.BinaryAppender.
func (d *Doc) AppendBinary(b []byte) ([]byte, error) {
	b = binary.AppendUvarint(b, uint64(d.Repo))
	b = appendStr(b, d.Path)
	b = appendStr(b, d.licenseAsFound())
	b = appendStr(b, d.LicenseFrom)
	b = appendStr(b, d.Lang)
	b = binary.AppendUvarint(b, uint64(d.Size))
	b = appendStr(b, string(d.Checks))
	b = appendStr(b, string(d.Lines))
	b = appendPostings(b, d.Postings)
	b = appendStr(b, string(d.Idents))
	b = appendPostings(b, d.Renamed)
	return b, nil
}

func appendPostings(b []byte, ps []Posting) []byte {
	b = binary.AppendUvarint(b, uint64(len(ps)))
	for _, p := range ps {
		b = binary.LittleEndian.AppendUint64(b, p.Hash)
		b = binary.AppendUvarint(b, uint64(p.Pos))
		b = binary.AppendUvarint(b, uint64(p.Line))
	}
	return b
}

func readPostings(r *byteReader) []Posting {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.fail(errShort)
		return nil
	}
	if n == 0 {
		return nil
	}
	ps := make([]Posting, n)
	for i := range ps {
		ps[i] = Posting{Hash: r.u64(), Pos: uint32(r.uvarint()), Line: uint32(r.uvarint())}
	}
	return ps
}

// UnmarshalBinary decodes a document encoded by AppendBinary.
func (d *Doc) UnmarshalBinary(b []byte) error {
	r := &byteReader{b: b}
	*d = *readDoc(r)
	if r.err != nil {
		return corruptf("document: %v", r.err)
	}
	if len(r.b) != 0 {
		return corruptf("document: %d trailing bytes", len(r.b))
	}
	return nil
}

// readDoc decodes a document encoded by appendDoc.
func readDoc(r *byteReader) *Doc {
	d := &Doc{}
	d.Repo = int(r.uvarint())
	d.Path, d.License, d.LicenseFrom, d.Lang = r.str(), r.str(), r.str(), r.str()
	d.License, d.LicenseAsFound = canonicalLicense(d.License)
	d.Size = int64(r.uvarint())
	d.Checks = append([]byte(nil), r.bytes(r.uvarint())...)
	d.Lines = append([]byte(nil), r.bytes(r.uvarint())...)
	d.Postings = readPostings(r)
	if idents := r.bytes(r.uvarint()); len(idents) > 0 {
		d.Idents = append([]byte(nil), idents...)
	}
	d.Renamed = readPostings(r)
	return d
}

// licenseAsFound returns the license expression as the file states it: what an
// index stores, readers canonicalising it (see canonicalLicense).
func (d *Doc) licenseAsFound() string {
	if d.LicenseAsFound != "" {
		return d.LicenseAsFound
	}
	return d.License
}

// canonicalLicense returns the canonical form of a license expression as found (see
// license.Canonical) and the text as found when it differs, "" when it does not. An
// expression that does not parse is its own canonical form.
//
// Shards, Redis documents and the spool store a license as found; readers
// canonicalise it. So an index written before canonical ids existed reports them
// too, and no reader of either age misreads the other's records.
func canonicalLicense(found string) (canon, asFound string) {
	canon = license.CanonicalOrSelf(found)
	if canon != found {
		asFound = found
	}
	return canon, asFound
}
