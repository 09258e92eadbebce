package index

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	"cleanroom/fingerprint"
)

// Section tags. A reader skips tags it does not know.
const (
	secMeta   = "meta"
	secRepos  = "repos"
	secDocs   = "docs"
	secFPHash = "fp.hash"
	secFPDoc  = "fp.doc"
	secFPPos  = "fp.pos"
	secFPLine = "fp.line"
	secTokens = "tokens"
	secLines  = "lines"
	secIdents = "idents"
	// The rename-robust postings, in the same layout as fp.*, prefixed "r".
	renamePrefix = "r"
)

// ShardMeta is the "meta" section of a shard.
type ShardMeta struct {
	Format    int    `json:"format"`
	K         int    `json:"k"`
	W         int    `json:"w"`
	Tokenizer int    `json:"tokenizer"`
	Docs      int    `json:"docs"`
	Postings  int    `json:"postings"`
	Tokens    int64  `json:"tokens"`
	Build     string `json:"build"`
	// RK and RW are the rename-robust parameters, 0 when the shard has none.
	RK      int `json:"rk,omitempty"`
	RW      int `json:"rw,omitempty"`
	Renamed int `json:"renamed,omitempty"` // rename-robust postings
}

func (m ShardMeta) params() fingerprint.Params { return fingerprint.Params{K: m.K, W: m.W} }

func (m ShardMeta) renameParams() fingerprint.Params { return fingerprint.Params{K: m.RK, W: m.RW} }

// A Repo is a repository: a folder with a license of its own.
type Repo struct {
	Name       string  `json:"name"`
	Root       string  `json:"root,omitempty"`    // directory in its source; only in the manifest
	License    string  `json:"license,omitempty"` // SPDX expression found in its license files, canonical
	Confidence float32 `json:"confidence,omitempty"`
	Source     string  `json:"source,omitempty"`  // the source it was read from
	Version    string  `json:"version,omitempty"` // of the source, where known
	URL        string  `json:"url,omitempty"`     // template with {path}, {start}, {end}
	// LicenseAsFound is the expression as its license files state it, when that is
	// not canonical ("GPL-2.0"); "" when it is. Only License is stored in a shard:
	// the text as found, which readers canonicalise.
	LicenseAsFound string `json:"license_as_found,omitempty"`
}

// canonicalize puts r's license in canonical form, keeping the text as found.
func (r *Repo) canonicalize() {
	r.License, r.LicenseAsFound = canonicalLicense(r.licenseAsFound())
}

// licenseAsFound returns the license as r's license files state it.
func (r *Repo) licenseAsFound() string {
	if r.LicenseAsFound != "" {
		return r.LicenseAsFound
	}
	return r.License
}

// shardDoc is a document as a shard's table has it.
type shardDoc struct {
	repo                int
	path, license, from string
	licenseAsFound      string // when it differs from license
	lang                string
	size                int64
	ntok, tokOff        int
	linesOff, linesLen  int
	identsOff           int // in the idents section, when there is one
}

// writeShard serialises docs, whose Repo fields index repos, as one shard.
func writeShard(w io.Writer, meta ShardMeta, repos []Repo, docs []*Doc) error {
	cw, err := newContainerWriter(w)
	if err != nil {
		return err
	}
	var tokens, lines, idents, dt []byte
	dt = binary.AppendUvarint(dt, uint64(len(docs)))
	renamed := false
	for _, d := range docs {
		dt = binary.AppendUvarint(dt, uint64(d.Repo))
		dt = appendStr(dt, d.Path)
		dt = appendStr(dt, d.licenseAsFound())
		dt = appendStr(dt, d.LicenseFrom)
		dt = appendStr(dt, d.Lang)
		dt = binary.AppendUvarint(dt, uint64(d.Size))
		dt = binary.AppendUvarint(dt, uint64(d.NumTokens()))
		dt = binary.AppendUvarint(dt, uint64(len(tokens)/2))
		dt = binary.AppendUvarint(dt, uint64(len(lines)))
		dt = binary.AppendUvarint(dt, uint64(len(d.Lines)))
		tokens = append(tokens, d.Checks...)
		lines = append(lines, d.Lines...)
		idents = append(idents, d.Idents...)
		renamed = renamed || d.Idents != nil
	}
	fp := encodePostings(docs, func(d *Doc) []Posting { return d.Postings })
	var rfp postingColumns
	if renamed {
		rfp = encodePostings(docs, func(d *Doc) []Posting { return d.Renamed })
		meta.Renamed = rfp.n
	} else {
		meta.RK, meta.RW = 0, 0
	}
	meta.Format = FormatVersion
	meta.Docs, meta.Postings, meta.Tokens = len(docs), fp.n, int64(len(tokens)/2)
	mj, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	var rt []byte
	rt = binary.AppendUvarint(rt, uint64(len(repos)))
	for _, r := range repos {
		for _, s := range []string{r.Name, r.licenseAsFound(), r.Source, r.Version, r.URL} {
			rt = appendStr(rt, s)
		}
		rt = binary.AppendUvarint(rt, uint64(r.Confidence*1000+0.5))
	}
	type sec struct {
		tag   string
		codec uint8
		data  []byte
	}
	secs := []sec{
		{secMeta, codecRaw, mj},
		{secRepos, codecZstd, rt},
		{secDocs, codecZstd, dt},
		{secFPHash, codecZstd, fp.hash},
		{secFPDoc, codecZstd, fp.doc},
		{secFPPos, codecZstd, fp.pos},
		{secFPLine, codecZstd, fp.line},
		{secTokens, codecRaw, tokens},
		{secLines, codecRaw, lines},
	}
	if renamed {
		secs = append(secs,
			sec{secIdents, codecRaw, idents},
			sec{renamePrefix + secFPHash, codecZstd, rfp.hash},
			sec{renamePrefix + secFPDoc, codecZstd, rfp.doc},
			sec{renamePrefix + secFPPos, codecZstd, rfp.pos},
			sec{renamePrefix + secFPLine, codecZstd, rfp.line})
	}
	for _, s := range secs {
		if err := cw.add(s.tag, s.codec, s.data); err != nil {
			return err
		}
	}
	return cw.close()
}

// postingColumns are the encoded columns of a shard's postings.
type postingColumns struct {
	hash, doc, pos, line []byte
	n                    int
}

// encodePostings sorts the postings that get returns for each document by (hash,
// document, position) and encodes them as columns.
func encodePostings(docs []*Doc, get func(*Doc) []Posting) postingColumns {
	type post struct {
		hash     uint64
		doc, pos uint32
		line     uint32
	}
	var posts []post
	for i, d := range docs {
		for _, p := range get(d) {
			posts = append(posts, post{p.Hash, uint32(i), p.Pos, p.Line})
		}
	}
	slices.SortFunc(posts, func(a, b post) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.doc, b.doc), cmp.Compare(a.pos, b.pos))
	})
	var c postingColumns
	var prev uint64
	for _, p := range posts {
		c.hash = binary.AppendUvarint(c.hash, p.hash-prev)
		prev = p.hash
		c.doc = binary.AppendUvarint(c.doc, uint64(p.doc))
		c.pos = binary.AppendUvarint(c.pos, uint64(p.pos))
		c.line = binary.AppendUvarint(c.line, uint64(p.line))
	}
	c.n = len(posts)
	return c
}

// shard is an open shard file.
type shard struct {
	name   string
	c      *container
	meta   ShardMeta
	repos  []Repo
	docs   []shardDoc
	tokens []byte // check values of every document, back to back
	lines  []byte // line tables of every document, back to back
	idents []byte // identifier bits of every document, back to back; nil without rename
}

// parseShard reads a shard held in data, which it keeps: the raw sections are used
// in place. With verify, every section's checksum is checked first.
func parseShard(name string, data []byte, verify bool) (*shard, error) {
	c, err := parseContainer(data)
	if err != nil {
		return nil, err
	}
	if verify {
		if err := c.verify(); err != nil {
			return nil, err
		}
	}
	s := &shard{name: name, c: c}
	mj, err := c.section(secMeta)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(mj, &s.meta); err != nil {
		return nil, corruptf("meta: %v", err)
	}
	if s.tokens, err = c.section(secTokens); err != nil {
		return nil, err
	}
	if s.lines, err = c.section(secLines); err != nil {
		return nil, err
	}
	if err := s.readRepos(); err != nil {
		return nil, err
	}
	if err := s.readDocs(); err != nil {
		return nil, err
	}
	if s.meta.RK > 0 {
		if err := s.readIdents(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func (s *shard) readIdents() error {
	var err error
	if s.idents, err = s.c.section(secIdents); err != nil {
		return err
	}
	off := 0
	for i := range s.docs {
		s.docs[i].identsOff = off
		off += (s.docs[i].ntok + 7) / 8
	}
	if off != len(s.idents) {
		return corruptf("idents: %d bytes for documents that need %d", len(s.idents), off)
	}
	return nil
}

func (s *shard) readRepos() error {
	b, err := s.c.section(secRepos)
	if err != nil {
		return err
	}
	r := &byteReader{b: b}
	n := r.uvarint()
	if n > uint64(len(b)) {
		return corruptf("repos: count %d", n)
	}
	s.repos = make([]Repo, n)
	for i := range s.repos {
		rp := &s.repos[i]
		rp.Name, rp.License, rp.Source, rp.Version, rp.URL = r.str(), r.str(), r.str(), r.str(), r.str()
		rp.canonicalize()
		rp.Confidence = float32(r.uvarint()) / 1000
	}
	if r.err != nil {
		return corruptf("repos: %v", r.err)
	}
	return nil
}

func (s *shard) readDocs() error {
	b, err := s.c.section(secDocs)
	if err != nil {
		return err
	}
	r := &byteReader{b: b}
	n := r.uvarint()
	if n != uint64(s.meta.Docs) || n > uint64(len(b)) {
		return corruptf("docs: table has %d documents, meta says %d", n, s.meta.Docs)
	}
	s.docs = make([]shardDoc, n)
	for i := range s.docs {
		d := &s.docs[i]
		d.repo = int(r.uvarint())
		d.path, d.license, d.from, d.lang = r.str(), r.str(), r.str(), r.str()
		d.license, d.licenseAsFound = canonicalLicense(d.license)
		d.size = int64(r.uvarint())
		d.ntok, d.tokOff = int(r.uvarint()), int(r.uvarint())
		d.linesOff, d.linesLen = int(r.uvarint()), int(r.uvarint())
		if r.err != nil {
			break
		}
		if d.repo >= len(s.repos) || d.tokOff < 0 || d.ntok < 0 || 2*(d.tokOff+d.ntok) > len(s.tokens) || d.tokOff+d.ntok < d.tokOff ||
			d.linesOff < 0 || d.linesLen < 0 || d.linesOff+d.linesLen > len(s.lines) || d.linesOff+d.linesLen < d.linesOff {
			return corruptf("docs: document %d (%s) points outside the shard", i, d.path)
		}
	}
	if r.err != nil {
		return corruptf("docs: %v", r.err)
	}
	return nil
}

// postings decodes the shard's postings: hashes ascending, with document, token
// position and line of each.
func (s *shard) postings(withLines bool) (hashes []uint64, docs, pos, lines []uint32, err error) {
	return s.postingsOf("", s.meta.Postings, withLines)
}

// renamedPostings decodes the shard's rename-robust postings.
func (s *shard) renamedPostings() (hashes []uint64, docs, pos []uint32, err error) {
	hashes, docs, pos, _, err = s.postingsOf(renamePrefix, s.meta.Renamed, false)
	return
}

func (s *shard) postingsOf(prefix string, n int, withLines bool) (hashes []uint64, docs, pos, lines []uint32, err error) {
	col := func(tag string) ([]uint32, error) {
		b, err := s.c.section(tag)
		if err != nil {
			return nil, err
		}
		out := make([]uint32, n)
		for i := range out {
			v, k := binary.Uvarint(b)
			if k <= 0 || v > 1<<32-1 {
				return nil, corruptf("%s: entry %d of %d is bad", tag, i, n)
			}
			out[i] = uint32(v)
			b = b[k:]
		}
		if len(b) != 0 {
			return nil, corruptf("%s: %d trailing bytes", tag, len(b))
		}
		return out, nil
	}
	b, err := s.c.section(prefix + secFPHash)
	if err != nil {
		return
	}
	if n < 0 || n > len(b) {
		return nil, nil, nil, nil, corruptf("%s: %d postings in %d bytes", prefix+secFPHash, n, len(b))
	}
	hashes = make([]uint64, n)
	var h uint64
	for i := range hashes {
		d, k := binary.Uvarint(b)
		if k <= 0 || h+d < h {
			return nil, nil, nil, nil, corruptf("%s: entry %d of %d is bad", prefix+secFPHash, i, n)
		}
		h += d
		hashes[i] = h
		b = b[k:]
	}
	if len(b) != 0 {
		return nil, nil, nil, nil, corruptf("%s: %d trailing bytes", prefix+secFPHash, len(b))
	}
	if docs, err = col(prefix + secFPDoc); err != nil {
		return
	}
	if pos, err = col(prefix + secFPPos); err != nil {
		return
	}
	for i, d := range docs {
		if int(d) >= len(s.docs) || int(pos[i]) >= s.docs[d].ntok {
			return nil, nil, nil, nil, corruptf("posting %d points at token %d of document %d, outside the shard", i, pos[i], d)
		}
	}
	if withLines {
		lines, err = col(prefix + secFPLine)
	}
	return
}

// check verifies everything a reader relies on: checksums, tables, postings.
func (s *shard) check() error {
	if err := s.c.verify(); err != nil {
		return err
	}
	if s.meta.Format != FormatVersion && s.meta.Format > FormatVersion {
		return fmt.Errorf("%w: %d", ErrVersion, s.meta.Format)
	}
	hashes, _, _, _, err := s.postings(true)
	if err != nil {
		return err
	}
	if !slices.IsSorted(hashes) {
		return corruptf("fingerprints are not sorted")
	}
	if s.meta.RK > 0 {
		rh, _, _, err := s.renamedPostings()
		if err != nil {
			return err
		}
		if !slices.IsSorted(rh) {
			return corruptf("rename-robust fingerprints are not sorted")
		}
	}
	return nil
}
