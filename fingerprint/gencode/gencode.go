// Package gencode generates source code for tests: plausible, unique, and written
// by this project, so tests need no third-party text.
package gencode

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// A Gen generates code from a seed; the same seed gives the same code.
type Gen struct {
	rng *rand.Rand
}

// New returns a generator seeded with seed.
func New(seed uint64) *Gen {
	return &Gen{rng: rand.New(rand.NewPCG(seed, seed^0x5eed))}
}

var syllables = strings.Fields("ka lo mi ne ru sa te vo bi da fe gu ho ji ku ma no pe qi ra si tu wa xe yo ze")

// Ident returns a random identifier of two to four syllables.
func (g *Gen) Ident() string {
	var b strings.Builder
	n := 2 + g.rng.IntN(3)
	for i := 0; i < n; i++ {
		if i > 0 && g.rng.IntN(3) == 0 {
			b.WriteByte('_')
		}
		b.WriteString(syllables[g.rng.IntN(len(syllables))])
	}
	return b.String()
}

func (g *Gen) num() string { return fmt.Sprint(g.rng.IntN(1000)) }

// CFunc returns a C function of roughly the given number of statements, with
// comments.
func (g *Gen) CFunc(stmts int) string {
	var b strings.Builder
	v, p, q := g.Ident(), g.Ident(), g.Ident()
	fmt.Fprintf(&b, "/* %s: %s the %s of %s. */\n", g.Ident(), g.Ident(), g.Ident(), g.Ident())
	fmt.Fprintf(&b, "static int %s(struct %s *%s, int %s)\n{\n\tint %s = %s;\n\n", g.Ident(), g.Ident(), p, q, v, g.num())
	for i := 0; i < stmts; i++ {
		a, c := g.Ident(), g.Ident()
		switch g.rng.IntN(6) {
		case 0:
			fmt.Fprintf(&b, "\tif (%s->%s > %s) {\n\t\t%s = %s(%s, %s + %s);\n\t}\n", p, a, g.num(), v, c, p, q, g.num())
		case 1:
			fmt.Fprintf(&b, "\tfor (%s = 0; %s < %s->%s; %s++)\n\t\t%s += %s->%s[%s];\n", v, v, p, a, v, q, p, c, v)
		case 2:
			fmt.Fprintf(&b, "\t%s->%s = %s(%s, \"%s %s\");\t// %s %s\n", p, a, c, q, g.Ident(), g.Ident(), g.Ident(), g.Ident())
		case 3:
			fmt.Fprintf(&b, "\twhile (%s-- > 0 && !%s(%s))\n\t\t%s |= %s << %s;\n", q, a, p, v, c, g.num())
		case 4:
			fmt.Fprintf(&b, "\tswitch (%s->%s) {\n\tcase %s:\n\t\treturn -%s;\n\tdefault:\n\t\tbreak;\n\t}\n", p, a, g.num(), g.Ident())
		default:
			fmt.Fprintf(&b, "\t%s = %s(%s->%s, %s, sizeof(*%s));\n", v, a, p, c, q, p)
		}
	}
	fmt.Fprintf(&b, "\treturn %s;\n}\n", v)
	return b.String()
}

// CFile returns a C file of n functions, headed by the given comment lines.
func (g *Gen) CFile(header string, n int) string {
	var b strings.Builder
	b.WriteString(header)
	fmt.Fprintf(&b, "#include \"%s.h\"\n\n", g.Ident())
	for i := 0; i < n; i++ {
		b.WriteString(g.CFunc(4 + g.rng.IntN(10)))
		b.WriteByte('\n')
	}
	return b.String()
}

// GoFunc returns a Go function of roughly the given number of statements.
func (g *Gen) GoFunc(stmts int) string {
	var b strings.Builder
	v, p := g.Ident(), g.Ident()
	fmt.Fprintf(&b, "// %s %s the %s.\nfunc %s(%s []int) (%s int) {\n", g.Ident(), g.Ident(), g.Ident(), g.Ident(), p, v)
	for i := 0; i < stmts; i++ {
		a := g.Ident()
		switch g.rng.IntN(3) {
		case 0:
			fmt.Fprintf(&b, "\tfor _, %s := range %s {\n\t\t%s += %s * %s\n\t}\n", a, p, v, a, g.num())
		case 1:
			fmt.Fprintf(&b, "\tif len(%s) > %s {\n\t\t%s = %s(%s[%s:])\n\t}\n", p, g.num(), v, a, p, g.num())
		default:
			fmt.Fprintf(&b, "\t%s := %s(%q, %s)\n\t_ = %s\n", a, g.Ident(), g.Ident(), v, a)
		}
	}
	fmt.Fprintf(&b, "\treturn %s\n}\n", v)
	return b.String()
}
