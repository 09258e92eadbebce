package license

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// A Policy decides which licenses get indexed. It is read from the "index:" section of
// a YAML file that other parts of cleanroom share (the proxy keeps "actions:" and
// "allowlist:" there), so top-level keys other than "index" are ignored:
//
//	# cleanroom policy
//	index:
//	  classes: [strong, weak]      # classes that are indexed
//	  licenses:                    # per SPDX id, overrides the class: index | skip
//	    MPL-2.0: skip
//	  classify:                    # class of ids the classifier cannot know
//	    LicenseRef-Acme: permissive
//
// A Policy is safe for concurrent use once it is built.
type Policy struct {
	classes  [numClasses]bool
	licenses map[string]override // by upper-case modern id (see modernID)
	classify map[string]override // by upper-case id
}

// override is a policy's word on one license id.
type override struct {
	id    string // as SPDX spells it
	keep  bool   // in licenses: index it
	class Class  // in classify: its class
}

// DefaultPolicy returns the default policy: strong and weak copyleft are indexed,
// permissive and unknown licenses are not.
func DefaultPolicy() *Policy {
	p := &Policy{licenses: make(map[string]override), classify: make(map[string]override)}
	p.classes[Strong], p.classes[Weak] = true, true
	return p
}

// LoadPolicy reads a policy file over the default policy.
func LoadPolicy(path string) (*Policy, error) {
	p := DefaultPolicy()
	if err := p.load(path); err != nil {
		return nil, err
	}
	return p, nil
}

// load applies a policy file to p.
func (p *Policy) load(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("corpus: policy: %w", err)
	}
	if err := p.parse(data); err != nil {
		return fmt.Errorf("corpus: policy %s: %w", path, err)
	}
	return nil
}

// ParsePolicy parses a policy file's content over the default policy.
func ParsePolicy(data []byte) (*Policy, error) {
	p := DefaultPolicy()
	if err := p.parse(data); err != nil {
		return nil, fmt.Errorf("corpus: policy: %w", err)
	}
	return p, nil
}

// parse applies the "index:" section of a YAML document to p. Unknown keys in the
// section are errors, so that a misspelt key does not pass for a default.
func (p *Policy) parse(data []byte) error {
	var doc map[string]yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	node, ok := doc["index"]
	if !ok {
		return nil
	}
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		return nil
	}
	var section struct {
		Classes  *[]string         `yaml:"classes"`
		Licenses map[string]string `yaml:"licenses"`
		Classify map[string]string `yaml:"classify"`
	}
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: index: want a mapping", node.Line)
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		switch k := node.Content[i]; k.Value {
		case "classes", "licenses", "classify":
		default:
			return fmt.Errorf("line %d: index: unknown key %q (want classes, licenses or classify)", k.Line, k.Value)
		}
	}
	if err := node.Decode(&section); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	if section.Classes != nil {
		if err := p.SetClasses(strings.Join(*section.Classes, ",")); err != nil {
			return fmt.Errorf("index.classes: %w", err)
		}
	}
	for _, id := range sortedKeys(section.Licenses) {
		if err := p.SetLicense(id, section.Licenses[id]); err != nil {
			return fmt.Errorf("index.licenses: %w", err)
		}
	}
	for _, id := range sortedKeys(section.Classify) {
		if err := p.SetClass(id, section.Classify[id]); err != nil {
			return fmt.Errorf("index.classify: %w", err)
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// SetClasses sets the indexed classes from a comma-separated list of class names; the
// empty list indexes no class (only licenses set to "index" are then indexed).
func (p *Policy) SetClasses(list string) error {
	var classes [numClasses]bool
	for _, name := range strings.Split(list, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		c, err := ParseClass(name)
		if err != nil {
			return err
		}
		classes[c] = true
	}
	p.classes = classes
	return nil
}

// SetLicense makes the license id indexed ("index") or not ("skip") whatever its class.
// The override matches the id and its deprecated spellings (GPL-2.0-only, GPL-2.0).
func (p *Policy) SetLicense(id, action string) error {
	canon, ok := canonicalID(strings.TrimSpace(id))
	if !ok {
		return fmt.Errorf("unknown license %q: %w", id, ErrBadExpression)
	}
	var keep bool
	switch strings.ToLower(strings.TrimSpace(action)) {
	case "index":
		keep = true
	case "skip":
	default:
		return fmt.Errorf("license %s: action %q (want index or skip)", id, action)
	}
	m := modernID(canon)
	p.licenses[strings.ToUpper(m)] = override{id: m, keep: keep}
	return nil
}

// SetClass gives the license id a class, for LicenseRef ids above all; it overrides
// the class of an SPDX id too.
func (p *Policy) SetClass(id, class string) error {
	canon, ok := canonicalID(strings.TrimSpace(id))
	if !ok {
		return fmt.Errorf("unknown license %q: %w", id, ErrBadExpression)
	}
	c, err := ParseClass(strings.TrimSpace(class))
	if err != nil {
		return fmt.Errorf("license %s: %w", id, err)
	}
	p.classify[strings.ToUpper(canon)] = override{id: canon, class: c}
	return nil
}

// Flags registers flags that change p, applied in command-line order:
// -policy FILE (reads a policy file), -index-classes LIST, -index-license ID=index|skip
// and -classify ID=CLASS (both repeatable).
func (p *Policy) Flags(fs *flag.FlagSet) {
	fs.Func("policy", "read the license policy from this YAML `file` (its index: section)", p.load)
	fs.Func("index-classes", "index licenses of these classes: a comma-separated `list` of strong, weak, unknown, permissive (default strong,weak)", p.SetClasses)
	fs.Func("index-license", "index (ID=index) or skip (ID=skip) a license whatever its class; `ID=ACTION`, repeatable", func(s string) error {
		id, action, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("want ID=index or ID=skip, got %q", s)
		}
		return p.SetLicense(id, action)
	})
	fs.Func("classify", "give a license id a class, for LicenseRef ids; `ID=CLASS`, repeatable", func(s string) error {
		id, class, ok := strings.Cut(s, "=")
		if !ok {
			return fmt.Errorf("want ID=CLASS, got %q", s)
		}
		return p.SetClass(id, class)
	})
}

// classOf returns the class of one license of an expression under the policy.
func (p *Policy) classOf(n *exprNode) Class {
	if o, ok := p.classify[strings.ToUpper(n.id)]; ok {
		return o.class
	}
	if o, ok := p.classify[strings.ToUpper(modernID(n.id))]; ok {
		return o.class
	}
	return classOfID(n.id)
}

// keepsLicense reports whether the policy indexes one license of an expression.
func (p *Policy) keepsLicense(n *exprNode) bool {
	if o, ok := p.licenses[strings.ToUpper(modernID(n.id))]; ok {
		return o.keep
	}
	if base, ok := strings.CutSuffix(n.id, "+"); ok {
		if o, ok := p.licenses[strings.ToUpper(modernID(base))]; ok {
			return o.keep
		}
	}
	return p.classes[p.classOf(n)]
}

// Keep reports whether code under the license expression is indexed, and its class
// (see Classify; ids given a class by the policy take it). A license is indexed when
// its class is, unless the policy overrides that license. The expression is indexed
// when it binds: AND when either side is indexed, OR only when both are, since the
// user may take either. The empty expression, no license known, is Unknown. The error
// is for an expression that does not parse; the file is then not indexed.
func (p *Policy) Keep(expr string) (keep bool, class Class, err error) {
	n, err := parseExpr(expr)
	if err != nil {
		return false, Unknown, err
	}
	if n == nil {
		return p.classes[Unknown], Unknown, nil
	}
	return n.bound(p.keepsLicense), n.class(p.classOf), nil
}

// String describes the policy in the flags' syntax.
func (p *Policy) String() string {
	var classes []string
	for c := Strong; ; c-- {
		if p.classes[c] {
			classes = append(classes, c.String())
		}
		if c == Permissive {
			break
		}
	}
	s := "index-classes=" + strings.Join(classes, ",")
	for _, o := range sortedOverrides(p.licenses) {
		action := "skip"
		if o.keep {
			action = "index"
		}
		s += " index-license=" + o.id + "=" + action
	}
	for _, o := range sortedOverrides(p.classify) {
		s += " classify=" + o.id + "=" + o.class.String()
	}
	return s
}

func sortedOverrides(m map[string]override) []override {
	list := make([]override, 0, len(m))
	for _, o := range m {
		list = append(list, o)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].id < list[j].id })
	return list
}
