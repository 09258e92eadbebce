package main

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"cleanroom/fingerprint"
)

// An edit turns a passage of indexed code into what a model might emit instead of
// it. Edits keep the passage's tokens unless their point is to change them.
type edit struct {
	name string
	// target is the recall the issue asks of the edit ("" when it sets none).
	target string
	// apply returns the edited passage, or "" when the edit cannot apply to it.
	apply  func(p *passage, rng *rand.Rand) string
	lang   func(p *passage) fingerprint.Lang // how the edited text is read
	rename bool                              // scan rename-robustly
}

// A passage is a stretch of an indexed file: tokens [start, start+n) of text.
type passage struct {
	doc       string // repo and path, for the report
	lang      fingerprint.Lang
	text      string
	toks      []fingerprint.Token // of text
	start     int
	n         int
	generated bool // of a generated file indexed for its copyleft notice
}

// code returns the passage's text: from its first token to its last.
func (p *passage) code() string {
	return p.text[p.toks[p.start].Off:p.toks[p.start+p.n-1].End]
}

// tokens returns the passage's tokens, with offsets into code().
func (p *passage) tokens() []fingerprint.Token {
	base := p.toks[p.start].Off
	out := make([]fingerprint.Token, p.n)
	for i, t := range p.toks[p.start : p.start+p.n] {
		t.Off -= base
		t.End -= base
		out[i] = t
	}
	return out
}

func codeLang(p *passage) fingerprint.Lang { return p.lang }
func mdLang(*passage) fingerprint.Lang     { return fingerprint.Markdown }

var edits = []edit{
	{name: "verbatim", target: "100%", apply: func(p *passage, _ *rand.Rand) string { return p.code() }, lang: codeLang},
	{name: "re-indented and re-wrapped", target: "100%", apply: reindentRewrap, lang: codeLang},
	{name: "comments stripped", target: "100%", apply: func(p *passage, _ *rand.Rand) string { return editGaps(p, stripComment) }, lang: codeLang},
	{name: "comments changed", target: "100%", apply: func(p *passage, _ *rand.Rand) string { return editGaps(p, changeComment) }, lang: codeLang},
	{name: "comments added", target: "100%", apply: addComments, lang: codeLang},
	{name: "in a markdown answer", target: "100%", apply: inMarkdown, lang: mdLang},
	{name: "identifiers renamed (exact matching)", apply: renameIdents, lang: codeLang},
	{name: "identifiers renamed (rename-robust)", target: ">= 90%", apply: renameIdents, lang: codeLang, rename: true},
	{name: "string literals changed", apply: changeStrings, lang: codeLang},
	{name: "interleaved with original lines", apply: interleave, lang: codeLang},
}

// gap returns the text between token i-1 and token i of the passage (before the
// first token: nothing).
func gaps(code string, toks []fingerprint.Token) []string {
	g := make([]string, len(toks))
	for i := 1; i < len(toks); i++ {
		g[i] = code[toks[i-1].End:toks[i].Off]
	}
	return g
}

// rebuild writes tokens with new gaps between them.
func rebuild(code string, toks []fingerprint.Token, gaps []string, tokText func(i int) string) string {
	var b strings.Builder
	for i, t := range toks {
		b.WriteString(gaps[i])
		if tokText != nil {
			b.WriteString(tokText(i))
		} else {
			b.WriteString(code[t.Off:t.End])
		}
	}
	return b.String()
}

// isComment reports whether a gap between tokens holds a comment.
func isComment(g string) bool { return strings.TrimSpace(g) != "" }

// inString reports whether the gap before token i is inside a string literal,
// where changing whitespace would change the literal (a newline ends a C string).
func inString(toks []fingerprint.Token, code string, i int) bool {
	return toks[i].InLit || toks[i-1].InLit
}

// editGaps rewrites the comments of a passage.
func editGaps(p *passage, f func(lang fingerprint.Lang, gap string) string) string {
	code, toks := p.code(), p.tokens()
	g := gaps(code, toks)
	for i := range g {
		if isComment(g[i]) {
			g[i] = f(p.lang, g[i])
		}
	}
	return rebuild(code, toks, g, nil)
}

// stripComment keeps a gap's line breaks, nothing else.
func stripComment(_ fingerprint.Lang, g string) string {
	if n := strings.Count(g, "\n"); n > 0 {
		return strings.Repeat("\n", n)
	}
	return " "
}

// changeComment replaces a comment's words, keeping its delimiters and lines.
func changeComment(l fingerprint.Lang, g string) string {
	lines := strings.Split(g, "\n")
	for i, line := range lines {
		if strings.TrimSpace(line) == "" {
			continue
		}
		// Keep the comment markers and whitespace, replace the letters.
		var b strings.Builder
		for _, r := range line {
			switch {
			case r >= 'a' && r <= 'z':
				b.WriteRune('a' + (r-'a'+7)%26)
			case r >= 'A' && r <= 'Z':
				b.WriteRune('A' + (r-'A'+7)%26)
			default:
				b.WriteRune(r)
			}
		}
		lines[i] = b.String()
	}
	return strings.Join(lines, "\n")
}

// lineComment returns a comment in the passage's language.
func lineComment(l fingerprint.Lang, text string) string {
	switch l {
	case fingerprint.Python, fingerprint.Shell:
		return "# " + text
	case fingerprint.EmacsLisp:
		return ";; " + text
	}
	return "// " + text
}

// addComments adds a comment line before every fourth line of the passage.
func addComments(p *passage, rng *rand.Rand) string {
	code, toks := p.code(), p.tokens()
	g := gaps(code, toks)
	lines := 0
	for i := 1; i < len(g); i++ {
		if !strings.Contains(g[i], "\n") || inString(toks, code, i) {
			continue
		}
		if lines++; lines%4 == 0 {
			g[i] = strings.Replace(g[i], "\n", "\n"+lineComment(p.lang, fmt.Sprintf("step %d: check the state first", rng.IntN(100)))+"\n", 1)
		}
	}
	return rebuild(code, toks, g, nil)
}

// reindentRewrap replaces every line's indentation with another, splits lines after
// commas and joins lines that end with an opening parenthesis or a comma.
func reindentRewrap(p *passage, rng *rand.Rand) string {
	code, toks := p.code(), p.tokens()
	g := gaps(code, toks)
	for i := 1; i < len(g); i++ {
		if isComment(g[i]) || inString(toks, code, i) {
			continue
		}
		prev := code[toks[i-1].Off:toks[i-1].End]
		switch {
		case strings.Contains(g[i], "\n") && (prev == "," || prev == "(") && rng.IntN(2) == 0:
			g[i] = " " // join
		case strings.Contains(g[i], "\n"):
			depth := strings.Count(g[i][strings.LastIndexByte(g[i], '\n')+1:], "\t")*4 +
				len(strings.TrimLeft(g[i][strings.LastIndexByte(g[i], '\n')+1:], "\t"))
			g[i] = strings.Repeat("\n", strings.Count(g[i], "\n")) + strings.Repeat(" ", depth/2)
		case prev == "," && rng.IntN(3) == 0:
			g[i] = "\n        " // split
		}
	}
	return rebuild(code, toks, g, nil)
}

// inMarkdown embeds the passage in a markdown answer, with prose before and after.
func inMarkdown(p *passage, _ *rand.Rand) string {
	return "Sure, here is one way to do it:\n\n```" + p.lang.String() + "\n" + p.code() +
		"\n```\n\nThis handles the common cases; let me know if you need the rest.\n"
}

// renameIdents renames every identifier consistently: the same new name for every
// occurrence of a name.
func renameIdents(p *passage, _ *rand.Rand) string {
	code, toks := p.code(), p.tokens()
	names := map[string]string{}
	return rebuild(code, toks, gaps(code, toks), func(i int) string {
		s := code[toks[i].Off:toks[i].End]
		if toks[i].Kind != fingerprint.Ident {
			return s
		}
		n, ok := names[s]
		if !ok {
			n = fmt.Sprintf("ren%d_%s", len(names), strings.ToLower(string(s[0])))
			if p.lang == fingerprint.EmacsLisp {
				n = fmt.Sprintf("ren%d-%s", len(names), strings.ToLower(string(s[0])))
			}
			names[s] = n
		}
		return n
	})
}

// changeStrings rewrites the words of every string literal.
func changeStrings(p *passage, _ *rand.Rand) string {
	code, toks := p.code(), p.tokens()
	return rebuild(code, toks, gaps(code, toks), func(i int) string {
		s := code[toks[i].Off:toks[i].End]
		if toks[i].Kind == fingerprint.String && (toks[i].End-toks[i].Off) > 1 {
			return "alt" + s
		}
		return s
	})
}

// interleave inserts an original statement after every third line that ends a
// statement (at least once).
func interleave(p *passage, _ *rand.Rand) string {
	code, toks := p.code(), p.tokens()
	g := gaps(code, toks)
	stmt := map[fingerprint.Lang]string{
		fingerprint.EmacsLisp: "(cleanroom-eval-note 'step)",
		fingerprint.Python:    "cleanroom_eval_note('step')",
		fingerprint.Shell:     "cleanroom_eval_note step",
		fingerprint.Go:        "cleanroomEvalNote()",
	}[p.lang]
	if stmt == "" {
		stmt = "cleanroom_eval_note(__LINE__);"
	}
	var ends []int // gaps that follow the end of a statement
	for i := 1; i < len(g); i++ {
		if !strings.Contains(g[i], "\n") || isComment(g[i]) || inString(toks, code, i) {
			continue
		}
		if stmtEnd(p.lang, code[toks[i-1].Off:toks[i-1].End]) {
			ends = append(ends, i)
		}
	}
	if len(ends) == 0 {
		return "" // no place for a statement: the passage is not used for this edit
	}
	for j, i := range ends {
		if j%3 == 2 || len(ends) < 3 && j == 0 {
			g[i] = "\n" + stmt + g[i]
		}
	}
	return rebuild(code, toks, g, nil)
}

// stmtEnd reports whether a line that ends with token tok ends a statement, so that
// another may follow it.
func stmtEnd(l fingerprint.Lang, tok string) bool {
	switch l {
	case fingerprint.EmacsLisp:
		return tok == ")"
	case fingerprint.C, fingerprint.Cpp, fingerprint.Java, fingerprint.JavaScript, fingerprint.TypeScript,
		fingerprint.CSharp, fingerprint.PHP, fingerprint.ObjectiveC, fingerprint.Rust:
		return tok == ";" || tok == "{" || tok == "}"
	}
	switch tok { // Go, Python, shell: a line ends a statement unless it continues
	case ",", "(", "[", "+", "-", "*", "/", "&", "|", "\\", "=", ".":
		return false
	}
	return true
}

// belowThreshold embeds a passage one token short of the threshold in an answer.
// The words around it are none a source would have next to the passage, which
// would rightly extend the match.
func belowThreshold(p *passage) string {
	return "Consider this fragment qzxv7\n\n```" + p.lang.String() + "\n" + p.code() + "\n```\n\nqzxv8 and adapt it\n"
}
