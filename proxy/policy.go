package proxy

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"cleanroom/corpus/license"
)

// An Action is what the proxy does with a match.
type Action int

// Actions, from the least to the most strict.
const (
	Allow    Action = iota // let it pass unmarked (it is still counted)
	Annotate               // let it pass with a citation
	Block                  // cut the choice before the copied run
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Annotate:
		return "annotate"
	case Block:
		return "block"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// ParseAction parses "allow", "annotate" or "block".
func ParseAction(s string) (Action, error) {
	for a := Allow; a <= Block; a++ {
		if strings.EqualFold(s, a.String()) {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown action %q (want block, annotate or allow)", s)
}

// A Policy decides the action for each match. The policy file is the indexer's (see
// license.Policy), with two sections of the proxy's own:
//
//	actions:              # by SPDX id, id pattern, or license class
//	  GPL-*: block
//	  AGPL-*: block
//	  LGPL-*: annotate
//	  MPL-2.0: annotate
//	  weak: annotate
//	allowlist:            # repositories the company owns or has licensed
//	  - repo: acme-*
//	  - repo: linux-source-6.1
//	    path: tools/**
//
// For a license expression the action is that of its licenses, AND taking the
// strictest and OR the least strict (the user may choose). For one license, an
// exact id wins over a pattern (the longest first), a pattern over a class, and a
// class over the default, the --mode flag.
//
// A third section, models:, lists the upstream's models with their licenses and
// says which the gateway refuses (see ModelPolicy).
type Policy struct {
	Default Action
	// MinTokens, from the file's match: {min_tokens: N}, makes the proxy act only on
	// matches of at least N tokens, for a company that wants more certainty than
	// the index's guarantee threshold (a longer holdback in block mode).
	MinTokens int
	// Models is the models section, nil when the file has none: no model is
	// listed and none is refused.
	Models *ModelPolicy

	exact     map[string]Action // upper-case id
	patterns  []patternAction   // longest first
	classes   map[license.Class]Action
	allowlist []allowRule
}

type patternAction struct {
	pattern string // upper case
	action  Action
}

type allowRule struct {
	Repo string // pattern of repository names
	Path string // pattern of paths within it, "" for all (license.Match syntax)
}

// NewPolicy returns a policy that applies def to every license.
func NewPolicy(def Action) *Policy {
	return &Policy{Default: def, exact: map[string]Action{}, classes: map[license.Class]Action{}}
}

// LoadPolicy reads the actions and allowlist of a policy file over NewPolicy(def).
func LoadPolicy(file string, def Action) (*Policy, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	p, err := ParsePolicy(b, def)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return p, nil
}

// ParsePolicy parses the proxy's sections of a policy file; other sections are the
// indexer's and are ignored here.
func ParsePolicy(data []byte, def Action) (*Policy, error) {
	var f struct {
		Actions   yaml.Node `yaml:"actions"`
		Allowlist yaml.Node `yaml:"allowlist"`
		Match     yaml.Node `yaml:"match"`
		Models    yaml.Node `yaml:"models"`
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	p := NewPolicy(def)
	if f.Actions.Kind != 0 {
		var acts map[string]string
		if err := f.Actions.Decode(&acts); err != nil {
			return nil, fmt.Errorf("actions: want a map of license to action: %w", err)
		}
		for k, v := range acts {
			a, err := ParseAction(v)
			if err != nil {
				return nil, fmt.Errorf("actions: %s: %w", k, err)
			}
			p.SetAction(k, a)
		}
	}
	if f.Match.Kind != 0 {
		var mt map[string]int
		if err := f.Match.Decode(&mt); err != nil {
			return nil, fmt.Errorf("match: want {min_tokens: N}: %w", err)
		}
		for k, v := range mt {
			if k != "min_tokens" || v < 0 {
				return nil, fmt.Errorf("match: unknown key %q or negative value (want min_tokens: N)", k)
			}
			p.MinTokens = v
		}
	}
	if f.Models.Kind != 0 {
		mp, err := parseModelPolicy(&f.Models)
		if err != nil {
			return nil, err
		}
		p.Models = mp
	}
	if f.Allowlist.Kind != 0 {
		var entries []map[string]string
		if err := f.Allowlist.Decode(&entries); err != nil {
			return nil, fmt.Errorf("allowlist: want a list of {repo: PATTERN, path: PATTERN}: %w", err)
		}
		for i, e := range entries {
			r := allowRule{Repo: e["repo"], Path: e["path"]}
			for k := range e {
				if k != "repo" && k != "path" {
					return nil, fmt.Errorf("allowlist: entry %d: unknown key %q (want repo, path)", i+1, k)
				}
			}
			if r.Repo == "" {
				return nil, fmt.Errorf("allowlist: entry %d has no repo", i+1)
			}
			if _, err := path.Match(r.Repo, ""); err != nil {
				return nil, fmt.Errorf("allowlist: entry %d: %w", i+1, err)
			}
			p.allowlist = append(p.allowlist, r)
		}
	}
	return p, nil
}

// SetAction sets the action for a license id, an id pattern with '*', or a class
// name (strong, weak, unknown, permissive).
func (p *Policy) SetAction(key string, a Action) {
	if c, err := license.ParseClass(key); err == nil {
		p.classes[c] = a
		return
	}
	k := strings.ToUpper(key)
	if strings.ContainsAny(k, "*?[") {
		p.patterns = append(p.patterns, patternAction{k, a})
		sort.SliceStable(p.patterns, func(i, j int) bool { return len(p.patterns[i].pattern) > len(p.patterns[j].pattern) })
		return
	}
	p.exact[k] = a
}

// actionFor returns the action for one license.
func (p *Policy) actionFor(id string, c license.Class) Action {
	k := strings.ToUpper(id)
	if a, ok := p.exact[k]; ok {
		return a
	}
	for _, pa := range p.patterns {
		if ok, _ := path.Match(pa.pattern, k); ok {
			return pa.action
		}
	}
	if a, ok := p.classes[c]; ok {
		return a
	}
	return p.Default
}

// Action returns what to do with a match of a file under license expr in repo. An
// allowlisted repository is allowed; an expression that does not parse gets the
// default action.
func (p *Policy) Action(repo, file, expr string) Action {
	for _, r := range p.allowlist {
		if ok, _ := path.Match(r.Repo, repo); !ok {
			continue
		}
		if r.Path == "" || license.Match(r.Path, file) {
			return Allow
		}
	}
	a, err := license.Eval(expr, func(id string, c license.Class) int { return int(p.actionFor(id, c)) })
	if err != nil {
		return p.Default
	}
	return Action(a)
}

// MayBlock reports whether any match could be blocked, which is what makes the
// proxy hold text back.
func (p *Policy) MayBlock() bool {
	if p.Default == Block {
		return true
	}
	for _, a := range p.exact {
		if a == Block {
			return true
		}
	}
	for _, pa := range p.patterns {
		if pa.action == Block {
			return true
		}
	}
	for _, a := range p.classes {
		if a == Block {
			return true
		}
	}
	return false
}
