package index

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"cleanroom/corpus/license"
	"cleanroom/fingerprint"
)

// ManifestName is the file in an index directory that names its shards. It is
// written last, atomically, so a reader sees either the old index or the new one.
const ManifestName = "manifest.json"

// A Manifest describes an index: how it was fingerprinted, its shards, and what
// went into it.
type Manifest struct {
	Format    int `json:"format"`
	K         int `json:"k"`
	W         int `json:"w"`
	Tokenizer int `json:"tokenizer"`
	// RenameK and RenameW are the parameters of the rename-robust fingerprints, 0
	// when the index has none.
	RenameK int       `json:"rename_k,omitempty"`
	RenameW int       `json:"rename_w,omitempty"`
	Build   string    `json:"build"`
	Created time.Time `json:"created"`

	Shards  []ShardInfo  `json:"shards"`
	Sources []SourceInfo `json:"sources,omitempty"`
	Repos   []Repo       `json:"repos"`
	// Licenses counts indexed documents by the SPDX expression that governs them,
	// in canonical form (license.Canonical).
	Licenses map[string]int `json:"licenses"`
	Totals   Totals         `json:"totals"`
	// Policy is the licensing policy the build applied, as the builder recorded it.
	Policy json.RawMessage `json:"policy,omitempty"`
	// Allow is the index's allow set of permissive reference code, if it has one.
	Allow *AllowInfo `json:"allow,omitempty"`
	// KGrams is the index's filter of all its k-grams, if it has one.
	KGrams *KGramInfo `json:"kgrams,omitempty"`
}

// ShardInfo names one shard file and what it holds.
type ShardInfo struct {
	File     string `json:"file"`
	Size     int64  `json:"size"`
	XXHash   string `json:"xxhash"` // of the whole file, hex
	Docs     int    `json:"docs"`
	Postings int    `json:"postings"`
	Renamed  int    `json:"renamed,omitempty"` // rename-robust postings
	Tokens   int64  `json:"tokens"`
}

// SourceInfo records one source a build read.
type SourceInfo struct {
	Name    string `json:"name"`
	Path    string `json:"path"`
	Kind    string `json:"kind"`
	Version string `json:"version,omitempty"`
	Files   int64  `json:"files"` // source files read and fingerprinted
	Bytes   int64  `json:"bytes"`
	Indexed int64  `json:"indexed"` // of those, kept by the policy
	// Generated counts the files read that are generated code with a copyleft
	// notice of their own (generated code without one is skipped as "generated"),
	// GeneratedIndexed those of them the policy kept.
	Generated        int64 `json:"generated,omitempty"`
	GeneratedIndexed int64 `json:"generated_indexed,omitempty"`
	// Skipped counts files not fingerprinted, by reason; Excluded counts
	// fingerprinted files the policy left out, by license class.
	Skipped  map[string]int64 `json:"skipped,omitempty"`
	Excluded map[string]int64 `json:"excluded,omitempty"`
}

// Totals sums an index.
type Totals struct {
	Docs     int   `json:"docs"`
	Postings int64 `json:"postings"`
	Tokens   int64 `json:"tokens"`
	Bytes    int64 `json:"bytes"` // of source text
	Disk     int64 `json:"disk"`  // of shard files
}

// Params returns the fingerprint parameters the index was built with.
func (m *Manifest) Params() fingerprint.Params { return fingerprint.Params{K: m.K, W: m.W} }

// RenameParams returns the parameters of the index's rename-robust fingerprints, and
// whether it has any.
func (m *Manifest) RenameParams() (fingerprint.Params, bool) {
	return fingerprint.Params{K: m.RenameK, W: m.RenameW}, m.RenameK > 0
}

// ErrParams is wrapped by the error for an index that this binary cannot query
// correctly: built with another tokenizer version or different parameters.
var ErrParams = errors.New("index parameters do not match")

// ReadManifest reads and checks the manifest of the index in dir.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestName))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s is not an index: no %s (build one with `indexer build --out %s SOURCE...`)", dir, ManifestName, dir)
		}
		return nil, err
	}
	m := &Manifest{}
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, ManifestName, err)
	}
	if m.Format > FormatVersion {
		return nil, fmt.Errorf("%w: index format %d, this binary reads up to %d", ErrVersion, m.Format, FormatVersion)
	}
	if m.Tokenizer != fingerprint.TokenizerVersion {
		return nil, fmt.Errorf("%w: index built with tokenizer version %d, this binary has version %d; rebuild the index",
			ErrParams, m.Tokenizer, fingerprint.TokenizerVersion)
	}
	if err := m.Params().Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if rp, ok := m.RenameParams(); ok {
		if err := rp.Validate(); err != nil {
			return nil, fmt.Errorf("%w: rename-robust parameters: %v", ErrCorrupt, err)
		}
	}
	m.canonicalizeLicenses()
	return m, nil
}

// canonicalizeLicenses puts the manifest's licenses in canonical form, as an index
// built before canonical ids may have them ("GPL-2.0", "GPL-2.0+" and "(GPL-2.0)"
// counted apart): the counts of one license are merged, and its repositories keep
// the text as found.
func (m *Manifest) canonicalizeLicenses() {
	if m.Licenses != nil {
		ls := make(map[string]int, len(m.Licenses))
		for l, n := range m.Licenses {
			ls[license.CanonicalOrSelf(l)] += n
		}
		m.Licenses = ls
	}
	for i := range m.Repos {
		m.Repos[i].canonicalize()
	}
}

// CheckParams reports an error if p, the parameters a caller means to fingerprint
// queries with, differ from the index's.
func (m *Manifest) CheckParams(p fingerprint.Params) error {
	if p != m.Params() {
		return fmt.Errorf("%w: index built with %v, queries would use %v", ErrParams, m.Params(), p)
	}
	return nil
}

// writeManifest writes m to dir atomically: a temporary file, synced, renamed.
func writeManifest(dir string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, ManifestName), append(b, '\n'))
}

// writeFileAtomic writes data to path via a temporary file in the same directory.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
