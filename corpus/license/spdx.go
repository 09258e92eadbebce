package license

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/github/go-spdx/v2/spdxexp/spdxlicenses"
)

// A Class says how a license binds code copied from a work under it. Classes are
// ordered by restrictiveness: Permissive < Unknown < Weak < Strong. Unknown sits
// between permissive and copyleft: a choice between a strong license and an unknown
// one may well be a permissive choice, while a strong license added to an unknown one
// is strong still.
type Class uint8

// The classes, least restrictive first.
const (
	Permissive Class = iota // attribution at most: MIT, BSD-*, Apache-*, ISC, ...
	Unknown                 // a license the classifier cannot know: LicenseRef-*, no license, non-free terms
	Weak                    // file- or library-level copyleft: LGPL-*, MPL-*, EPL-*, CDDL-*, ...
	Strong                  // copyleft over the whole work: GPL-*, AGPL-*, EUPL-*, OSL-*, ...
	numClasses
)

var classNames = [numClasses]string{"permissive", "unknown", "weak", "strong"}

// String returns the class's name: "permissive", "unknown", "weak" or "strong".
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", uint8(c))
}

// ParseClass returns the class named s, in any case.
func ParseClass(s string) (Class, error) {
	for c, name := range classNames {
		if strings.EqualFold(s, name) {
			return Class(c), nil
		}
	}
	return 0, fmt.Errorf("corpus: unknown license class %q (want permissive, unknown, weak or strong)", s)
}

// ErrBadExpression is wrapped by the errors of expressions that do not parse or name
// a license that is neither an SPDX id nor a LicenseRef.
var ErrBadExpression = errors.New("bad license expression")

// Classify returns the class of an SPDX license expression: the least restrictive
// class c such that the expression is satisfied by the licenses of classes up to c.
// So OR takes its least restrictive side (GPL-2.0 OR MIT is permissive: the user may
// choose MIT) and AND its most restrictive one. An exception (WITH Linux-syscall-note,
// WITH Classpath-exception-2.0) does not change the class: it grants rights to code
// that uses the work, not to copies of the work. Deprecated ids ("GPL-2.0+",
// "LGPL-2.1+") and operators in any case are accepted. LicenseRef ids are Unknown;
// the empty expression, no license stated, is Unknown too.
func Classify(expr string) (Class, error) {
	n, err := parseExpr(expr)
	if err != nil {
		return Unknown, err
	}
	if n == nil {
		return Unknown, nil
	}
	return n.class(func(l *exprNode) Class { return classOfID(l.id) }), nil
}

// Eval evaluates a license expression from a value per license: AND takes the larger
// of its sides' values, OR the smaller, since the user may pick either side. leaf gets
// each license's current SPDX id ("GPL-2.0-only" for "GPL-2.0", "GPL-2.0-or-later"
// for "GPL-2.0+") and its class. The empty expression evaluates to leaf("", Unknown).
// A caller ranks what it decides by strictness (allow < annotate < block, say) and
// gets the decision the expression binds its user to.
func Eval(expr string, leaf func(id string, class Class) int) (int, error) {
	n, err := parseExpr(expr)
	if err != nil {
		return 0, err
	}
	if n == nil {
		return leaf("", Unknown), nil
	}
	return n.eval(func(l *exprNode) int { return leaf(modernID(l.id), classOfID(l.id)) }), nil
}

func (n *exprNode) eval(leaf func(*exprNode) int) int {
	switch n.op {
	case "AND":
		return max(n.left.eval(leaf), n.right.eval(leaf))
	case "OR":
		return min(n.left.eval(leaf), n.right.eval(leaf))
	}
	return leaf(n)
}

// exprNode is a node of a parsed license expression.
type exprNode struct {
	op          string // "AND", "OR", or "" for a license
	left, right *exprNode
	id          string // a license's id as SPDX spells it, "+" kept
	exception   string // the exception after WITH, or ""
}

// class evaluates the expression's class from the class of each license.
func (n *exprNode) class(leaf func(*exprNode) Class) Class {
	switch n.op {
	case "AND":
		return max(n.left.class(leaf), n.right.class(leaf))
	case "OR":
		return min(n.left.class(leaf), n.right.class(leaf))
	}
	return leaf(n)
}

// bound evaluates whether the expression binds its user, from whether each license
// does: AND binds when either side does, OR only when both do, as the user may pick.
func (n *exprNode) bound(leaf func(*exprNode) bool) bool {
	switch n.op {
	case "AND":
		return n.left.bound(leaf) || n.right.bound(leaf)
	case "OR":
		return n.left.bound(leaf) && n.right.bound(leaf)
	}
	return leaf(n)
}

// parseExpr parses an SPDX license expression; nil, nil for the empty expression. It
// is a small recursive-descent parser rather than go-spdx's, whose syntax tree is not
// exported: go-spdx's Satisfies takes some 20 ms against the whole license list and
// rejects lower-case operators and WITH forms absent from that list. go-spdx's list
// of ids still decides which ids exist.
func parseExpr(expr string) (*exprNode, error) {
	p := &exprParser{expr: expr, toks: tokenize(expr)}
	if len(p.toks) == 0 {
		return nil, nil
	}
	n, err := p.or()
	if err == nil && p.pos < len(p.toks) {
		err = p.errorf("unexpected %q", p.toks[p.pos])
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

type exprParser struct {
	expr string
	toks []string
	pos  int
}

func (p *exprParser) errorf(format string, args ...any) error {
	return fmt.Errorf("corpus: license expression %q: %s: %w", p.expr, fmt.Sprintf(format, args...), ErrBadExpression)
}

func tokenize(s string) []string {
	var toks []string
	for _, f := range strings.Fields(s) {
		for f != "" {
			i := strings.IndexAny(f, "()")
			switch {
			case i < 0:
				toks, f = append(toks, f), ""
			case i > 0:
				toks, f = append(toks, f[:i]), f[i:]
			default:
				toks, f = append(toks, f[:1]), f[1:]
			}
		}
	}
	return toks
}

// peekOp reports whether the next token is the operator op, in any case.
func (p *exprParser) peekOp(op string) bool {
	return p.pos < len(p.toks) && strings.EqualFold(p.toks[p.pos], op)
}

func (p *exprParser) or() (*exprNode, error) {
	n, err := p.and()
	for err == nil && p.peekOp("OR") {
		p.pos++
		var r *exprNode
		if r, err = p.and(); err == nil {
			n = &exprNode{op: "OR", left: n, right: r}
		}
	}
	return n, err
}

func (p *exprParser) and() (*exprNode, error) {
	n, err := p.unary()
	for err == nil && p.peekOp("AND") {
		p.pos++
		var r *exprNode
		if r, err = p.unary(); err == nil {
			n = &exprNode{op: "AND", left: n, right: r}
		}
	}
	return n, err
}

func (p *exprParser) unary() (*exprNode, error) {
	if p.pos >= len(p.toks) {
		return nil, p.errorf("unexpected end")
	}
	tok := p.toks[p.pos]
	p.pos++
	if tok == "(" {
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.pos >= len(p.toks) || p.toks[p.pos] != ")" {
			return nil, p.errorf("missing )")
		}
		p.pos++
		return n, nil
	}
	if tok == ")" || strings.EqualFold(tok, "AND") || strings.EqualFold(tok, "OR") || strings.EqualFold(tok, "WITH") {
		return nil, p.errorf("unexpected %q", tok)
	}
	id, ok := canonicalID(tok)
	if !ok {
		return nil, p.errorf("unknown license %q", tok)
	}
	n := &exprNode{id: id}
	if p.peekOp("WITH") {
		p.pos++
		if p.pos >= len(p.toks) {
			return nil, p.errorf("missing exception after WITH")
		}
		exc := p.toks[p.pos]
		p.pos++
		if ok, canon := spdxlicenses.IsException(exc); ok {
			n.exception = canon
		} else if strings.HasPrefix(exc, "AdditionRef-") && validRef(exc[len("AdditionRef-"):]) {
			n.exception = exc
		} else {
			return nil, p.errorf("unknown exception %q", exc)
		}
	}
	return n, nil
}

// canonicalID returns the SPDX spelling of a license id, or of a LicenseRef, and
// whether it is one. A "+" ending (or later) is kept.
func canonicalID(tok string) (string, bool) {
	if ok, id := spdxlicenses.IsActiveLicense(tok); ok {
		return id, true
	}
	if ok, id := spdxlicenses.IsDeprecatedLicense(tok); ok {
		return id, true
	}
	if base, plus := strings.CutSuffix(tok, "+"); plus {
		if id, ok := canonicalID(base); ok && !strings.HasSuffix(id, "+") && !strings.HasPrefix(id, "LicenseRef-") {
			return id + "+", true
		}
		return "", false
	}
	ref := tok
	if doc, rest, ok := strings.Cut(tok, ":"); ok {
		if !strings.HasPrefix(doc, "DocumentRef-") || !validRef(doc[len("DocumentRef-"):]) {
			return "", false
		}
		ref = rest
	}
	if strings.HasPrefix(ref, "LicenseRef-") && validRef(ref[len("LicenseRef-"):]) {
		return tok, true
	}
	return "", false
}

// validRef reports whether s is a valid idstring: letters, digits, '.' and '-'.
func validRef(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Canonical returns a license expression in its canonical form: each license as its
// current SPDX id, as SPDX spells it (deprecated GNU ids mapped: GPL-2.0 is
// GPL-2.0-only, GPL-2.0+ is GPL-2.0-or-later, LGPL-2.1+ is LGPL-2.1-or-later),
// exceptions as SPDX spells them, operators in upper case, single spaces, and
// parentheses only where AND inside OR needs them: "(GPL-2.0)" is GPL-2.0-only,
// "(GPL-2.0+ OR mit)" is GPL-2.0-or-later OR MIT. LicenseRef and AdditionRef ids are
// kept as written. The empty expression is "". An expression that does not parse
// comes back as given, with the parse error.
func Canonical(expr string) (string, error) {
	if v, ok := canonCache.Load(expr); ok {
		c := v.(canonResult)
		return c.expr, c.err
	}
	n, err := parseExpr(expr)
	c := canonResult{expr: expr, err: err}
	if err == nil && n != nil {
		c.expr = string(n.appendCanonical(nil, ""))
	} else if err == nil {
		c.expr = ""
	}
	if canonSize.Add(1) <= maxCanonCache {
		canonCache.Store(expr, c)
	}
	return c.expr, c.err
}

// CanonicalOrSelf returns Canonical(expr), or expr as given when it does not parse.
func CanonicalOrSelf(expr string) string {
	c, _ := Canonical(expr)
	return c
}

// Canonical forms are remembered: an index or a corpus has a few hundred distinct
// expressions among its many thousand files. The cache is bounded, as the proxy's
// callers may hand it anything.
var (
	canonCache sync.Map // expression as given -> canonResult
	canonSize  atomic.Int64
)

const maxCanonCache = 1 << 14

type canonResult struct {
	expr string
	err  error
}

// appendCanonical appends the canonical form of the expression rooted at n, which
// sits under an operator parent ("" at the top).
func (n *exprNode) appendCanonical(b []byte, parent string) []byte {
	if n.op == "" {
		b = append(b, modernID(n.id)...)
		if n.exception != "" {
			b = append(b, " WITH "...)
			b = append(b, n.exception...)
		}
		return b
	}
	// AND binds tighter than OR, and both are associative: only an OR under an AND
	// needs parentheses.
	paren := n.op == "OR" && parent == "AND"
	if paren {
		b = append(b, '(')
	}
	b = n.left.appendCanonical(b, n.op)
	b = append(b, ' ')
	b = append(b, n.op...)
	b = append(b, ' ')
	b = n.right.appendCanonical(b, n.op)
	if paren {
		b = append(b, ')')
	}
	return b
}

// modernID returns the current SPDX id for a deprecated GNU id: GPL-2.0 is
// GPL-2.0-only, GPL-2.0+ is GPL-2.0-or-later. Other ids come back unchanged.
func modernID(id string) string {
	if base, ok := strings.CutSuffix(id, "+"); ok {
		// "GPL-2.0-or-later+" and "GPL-2.0-only+" say "or later" too.
		if b, ok := strings.CutSuffix(base, "-or-later"); ok {
			base = b
		} else if b, ok := strings.CutSuffix(base, "-only"); ok {
			base = b
		}
		if ok, m := spdxlicenses.IsActiveLicense(base + "-or-later"); ok {
			return m
		}
		return id
	}
	if ok, _ := spdxlicenses.IsDeprecatedLicense(id); ok {
		if ok, m := spdxlicenses.IsActiveLicense(id + "-only"); ok {
			return m
		}
	}
	return id
}
