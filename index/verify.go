package index

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
)

// Verify checks every shard of the index in dir: present, of the size and checksum
// the manifest gives, every section's checksum, and every table and posting within
// bounds. It returns one error per damaged shard, none for a sound index; err is
// for an index it cannot read at all (no manifest, say).
func Verify(dir string) (problems []error, err error) {
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	for _, si := range m.Shards {
		if err := verifyShard(filepath.Join(dir, si.File), si, m); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", si.File, err))
		}
	}
	if m.Allow != nil {
		if _, err := readAllow(dir, m); err != nil {
			problems = append(problems, err)
		}
	}
	if m.KGrams != nil {
		ix := &Index{Manifest: m}
		if err := ix.openKGrams(dir, OpenOptions{}); err != nil {
			problems = append(problems, err)
		}
		ix.Close()
	}
	return problems, nil
}

func verifyShard(path string, si ShardInfo, m *Manifest) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if int64(len(data)) != si.Size {
		return fmt.Errorf("%w: %d bytes, manifest says %d (truncated?)", ErrCorrupt, len(data), si.Size)
	}
	if got := fmt.Sprintf("%016x", xxhash.Sum64(data)); got != si.XXHash {
		// Go on: the section checksums say where the damage is.
		if err := sectionProblem(data); err != nil {
			return err
		}
		return fmt.Errorf("%w: file checksum %s, manifest says %s", ErrCorrupt, got, si.XXHash)
	}
	s, err := parseShard(si.File, data, true)
	if err != nil {
		return err
	}
	if s.meta.params() != m.Params() || s.meta.Tokenizer != m.Tokenizer {
		return fmt.Errorf("%w: shard built with %v tokenizer %d, manifest says %v tokenizer %d",
			ErrParams, s.meta.params(), s.meta.Tokenizer, m.Params(), m.Tokenizer)
	}
	if s.meta.Docs != si.Docs || s.meta.Postings != si.Postings {
		return fmt.Errorf("%w: shard holds %d documents and %d postings, manifest says %d and %d",
			ErrCorrupt, s.meta.Docs, s.meta.Postings, si.Docs, si.Postings)
	}
	return s.check()
}

func sectionProblem(data []byte) error {
	c, err := parseContainer(data)
	if err != nil {
		return err
	}
	return c.verify()
}
