// Package modelcard reads the model cards of models deployed from local
// directories in the Hugging Face layout, and judges their licenses: the card's
// license id mapped to the gateway's license classes and conditions (licenses.go),
// the lineage through base_model (the strictest class along it wins), the training
// datasets known to be under litigation or of disputed license (datasets.go), and
// a decision against what a compliance review recorded (gate.go).
//
// A model directory is a snapshot directory holding README.md, whose YAML front
// matter carries license, license_name, license_link, base_model,
// base_model_relation, datasets and tags. The hub cache names snapshots by commit:
// models--ORG--NAME/snapshots/COMMIT/, with refs/main naming the current one. No
// hub is ever contacted.
package modelcard

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A Card is what a model card's front matter says, and where the card was read.
type Card struct {
	// ID is the model's hub id, ORG/NAME, from the hub cache's directory name
	// (models--ORG--NAME); for another directory, its name.
	ID string `json:"id"`
	// Dir is the snapshot directory, File its README.md.
	Dir  string `json:"dir"`
	File string `json:"file"`
	// Commit is the snapshot's commit: the snapshot directory's name in the hub
	// cache, or the HEAD of a git clone; "" when neither says.
	Commit string `json:"commit,omitempty"`

	License           string   `json:"license,omitempty"`      // Hugging Face's license id: apache-2.0, llama3, other, ...
	LicenseName       string   `json:"license_name,omitempty"` // with license: other
	LicenseLink       string   `json:"license_link,omitempty"`
	BaseModels        []string `json:"base_model,omitempty"`
	BaseModelRelation string   `json:"base_model_relation,omitempty"` // adapter, merge, quantized, finetune
	Datasets          []string `json:"datasets,omitempty"`
	Tags              []string `json:"tags,omitempty"`
}

// LicenseTag is the license the card names, as a review records it: its license
// id, or for license: other its license_name ("other" without one). Both
// spellings of the same license (license: llama3, or license: other with
// license_name: llama3) have the same tag.
func (c *Card) LicenseTag() string {
	if strings.EqualFold(c.License, "other") && c.LicenseName != "" {
		return strings.ToLower(c.LicenseName)
	}
	return strings.ToLower(c.License)
}

// A SyntaxError is a malformed card: the file and line, and what is wrong there.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// relations are the values of base_model_relation the hub knows.
var relations = []string{"adapter", "merge", "quantized", "finetune"}

// Parse reads the front matter of a model card; file names it in errors. Keys the
// package does not read are ignored; the keys it reads must have the hub's types.
func Parse(file string, data []byte) (*Card, error) {
	fm, offset, err := frontMatter(file, data)
	if err != nil {
		return nil, err
	}
	c := &Card{File: file}
	var root yaml.Node
	if err := yaml.Unmarshal(fm, &root); err != nil {
		return nil, yamlError(file, offset, err)
	}
	if len(root.Content) == 0 {
		return c, nil // empty front matter: a card that says nothing
	}
	doc := root.Content[0]
	if doc.Kind != yaml.MappingNode {
		return nil, &SyntaxError{file, doc.Line + offset, "the front matter is not a mapping of keys to values"}
	}
	bad := func(n *yaml.Node, key, format string, args ...any) error {
		return &SyntaxError{file, n.Line + offset, key + ": " + fmt.Sprintf(format, args...)}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if seen[k.Value] {
			return nil, bad(k, k.Value, "given twice")
		}
		seen[k.Value] = true
		switch k.Value {
		case "license", "license_name", "license_link", "base_model_relation":
			if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
				what := "a list"
				if v.Kind == yaml.MappingNode {
					what = "a mapping"
				} else if v.Tag == "!!null" {
					what = "nothing"
				}
				return nil, bad(v, k.Value, "want one value, got %s", what)
			}
			s := strings.TrimSpace(v.Value)
			switch k.Value {
			case "license":
				if !licenseID.MatchString(s) {
					return nil, bad(v, k.Value, "%q is not a license id (lower case, as apache-2.0 or llama3; other with license_name for the rest)", s)
				}
				c.License = s
			case "license_name":
				c.LicenseName = s
			case "license_link":
				c.LicenseLink = s
			case "base_model_relation":
				if !slices.Contains(relations, s) {
					return nil, bad(v, k.Value, "%q: want one of %s", s, strings.Join(relations, ", "))
				}
				c.BaseModelRelation = s
			}
		case "base_model", "datasets", "tags":
			list, err := stringList(v)
			if err != nil {
				return nil, bad(v, k.Value, "%v", err)
			}
			switch k.Value {
			case "base_model":
				for j, b := range list {
					if strings.ContainsAny(b, " \t") || strings.Count(b, "/") > 1 {
						return nil, bad(v.Content[min(j, len(v.Content)-1)], k.Value, "%q is not a model id (ORG/NAME)", b)
					}
				}
				c.BaseModels = list
			case "datasets":
				c.Datasets = list
			case "tags":
				c.Tags = list
			}
		}
	}
	return c, nil
}

var licenseID = regexp.MustCompile(`^[a-z0-9][a-z0-9.+_-]*$`)

// stringList reads a string, or a list of strings.
func stringList(v *yaml.Node) ([]string, error) {
	switch {
	case v.Kind == yaml.ScalarNode && v.Tag == "!!null":
		return nil, nil
	case v.Kind == yaml.ScalarNode:
		return []string{strings.TrimSpace(v.Value)}, nil
	case v.Kind == yaml.SequenceNode:
		var out []string
		for _, e := range v.Content {
			if e.Kind != yaml.ScalarNode || e.Tag == "!!null" {
				return nil, fmt.Errorf("want a list of strings: an entry is not a string")
			}
			out = append(out, strings.TrimSpace(e.Value))
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a string or a list of strings, got a mapping")
}

// frontMatter returns the YAML between the card's opening "---" line and its
// closing one, and the number of lines before it.
func frontMatter(file string, data []byte) ([]byte, int, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	lines := bytes.SplitAfter(data, []byte("\n"))
	if len(lines) == 0 || string(bytes.TrimRight(lines[0], " \t\r\n")) != "---" {
		return nil, 0, &SyntaxError{file, 1, "no YAML front matter: the card does not begin with a --- line"}
	}
	for i := 1; i < len(lines); i++ {
		if string(bytes.TrimRight(lines[i], " \t\r\n")) == "---" {
			return bytes.Join(lines[1:i], nil), 1, nil
		}
	}
	return nil, 0, &SyntaxError{file, 1, "the front matter that begins here has no closing --- line"}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a YAML parser's error into one naming the card's file and line.
func yamlError(file string, offset int, err error) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return &SyntaxError{file, n + offset, m[2]}
	}
	return &SyntaxError{file, 1 + offset, strings.TrimPrefix(msg, "yaml: ")}
}

// ReadDir reads the card of one snapshot directory. Its id is given by the hub
// cache layout when the directory is in one, else by its name; its commit by the
// layout or a git clone's HEAD.
func ReadDir(dir string) (*Card, error) {
	file := filepath.Join(dir, "README.md")
	data, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: no README.md: not a model directory (want a snapshot directory with a model card, a models--ORG--NAME directory of the hub cache, or a cache holding them)", dir)
		}
		return nil, err
	}
	c, err := Parse(file, data)
	if err != nil {
		return nil, err
	}
	c.Dir = dir
	abs, _ := filepath.Abs(dir)
	parent, name := filepath.Split(filepath.Clean(abs))
	repo, snaps := filepath.Split(filepath.Clean(parent))
	if snaps == "snapshots" && strings.HasPrefix(filepath.Base(repo), "models--") {
		c.ID = hubID(filepath.Base(repo))
		c.Commit = name
	} else {
		c.ID = name
		c.Commit = gitHead(dir)
	}
	return c, nil
}

// hubID is the model id of a hub cache directory: models--ORG--NAME is ORG/NAME.
func hubID(dir string) string {
	return strings.ReplaceAll(strings.TrimPrefix(dir, "models--"), "--", "/")
}

var commitHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// gitHead returns the commit a git clone's HEAD is at, or "".
func gitHead(dir string) string {
	git := filepath.Join(dir, ".git")
	head, err := os.ReadFile(filepath.Join(git, "HEAD"))
	if err != nil {
		return ""
	}
	h := strings.TrimSpace(string(head))
	ref, ok := strings.CutPrefix(h, "ref: ")
	if !ok {
		if commitHash.MatchString(h) {
			return h
		}
		return ""
	}
	if b, err := os.ReadFile(filepath.Join(git, filepath.FromSlash(ref))); err == nil {
		if s := strings.TrimSpace(string(b)); commitHash.MatchString(s) {
			return s
		}
	}
	packed, _ := os.ReadFile(filepath.Join(git, "packed-refs"))
	for _, l := range strings.Split(string(packed), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[1] == ref && commitHash.MatchString(f[0]) {
			return f[0]
		}
	}
	return ""
}

// readHubModel reads the current snapshot of a models--ORG--NAME directory: the
// one refs/main names, or the only one.
func readHubModel(dir string) (*Card, error) {
	snaps := filepath.Join(dir, "snapshots")
	if b, err := os.ReadFile(filepath.Join(dir, "refs", "main")); err == nil {
		commit := strings.TrimSpace(string(b))
		return ReadDir(filepath.Join(snaps, commit))
	}
	ents, err := os.ReadDir(snaps)
	if err != nil {
		return nil, fmt.Errorf("%s: no snapshots: %w", dir, err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) != 1 {
		return nil, fmt.Errorf("%s: %d snapshots and no refs/main to say which is deployed: name the snapshot directory", dir, len(names))
	}
	return ReadDir(filepath.Join(snaps, names[0]))
}

// A Set is the cards at hand, by id.
type Set struct {
	Cards []*Card // in the order read
	byID  map[string]*Card
}

// Load reads the cards of the directories given: each a snapshot directory (with
// README.md), a models--ORG--NAME directory of the hub cache, or a hub cache (a
// directory of models--* directories, or one holding hub/). A model read twice is
// an error.
func Load(paths ...string) (*Set, error) {
	s := &Set{byID: map[string]*Card{}}
	add := func(c *Card, err error) error {
		if err != nil {
			return err
		}
		if o := s.byID[c.ID]; o != nil {
			return fmt.Errorf("model %s is in two directories: %s and %s", c.ID, o.Dir, c.Dir)
		}
		s.byID[c.ID] = c
		s.Cards = append(s.Cards, c)
		return nil
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s: not a directory", p)
		}
		if _, err := os.Stat(filepath.Join(p, "README.md")); err == nil {
			if err := add(ReadDir(p)); err != nil {
				return nil, err
			}
			continue
		}
		if strings.HasPrefix(filepath.Base(filepath.Clean(p)), "models--") {
			if err := add(readHubModel(p)); err != nil {
				return nil, err
			}
			continue
		}
		root := p
		if fi, err := os.Stat(filepath.Join(p, "hub")); err == nil && fi.IsDir() {
			root = filepath.Join(p, "hub")
		}
		ents, err := os.ReadDir(root)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, e := range ents {
			if e.IsDir() && strings.HasPrefix(e.Name(), "models--") {
				n++
				if err := add(readHubModel(filepath.Join(root, e.Name()))); err != nil {
					return nil, err
				}
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: no README.md and no models--* directories: not a model directory nor a hub cache", p)
		}
	}
	return s, nil
}

// Lookup returns the card of a model id: the card of that id, else the only card
// whose name (the part after ORG/) is the id's name; nil when none is at hand.
func (s *Set) Lookup(id string) *Card {
	if s == nil {
		return nil
	}
	if c := s.byID[id]; c != nil {
		return c
	}
	// By name only where one side has no ORG/: a plain directory's name, or an id
	// as a client sends it. Two orgs' models of one name are different models.
	name := id[strings.LastIndexByte(id, '/')+1:]
	var found *Card
	for _, c := range s.Cards {
		if strings.Contains(id, "/") && strings.Contains(c.ID, "/") {
			continue
		}
		if strings.EqualFold(c.ID[strings.LastIndexByte(c.ID, '/')+1:], name) {
			if found != nil {
				return nil // ambiguous: not at hand
			}
			found = c
		}
	}
	return found
}
