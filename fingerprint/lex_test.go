package fingerprint

import (
	"fmt"
	"strings"
	"testing"
)

// show renders tokens as "kind:text" for readable comparisons.
func show(src string, toks []Token) string {
	var b strings.Builder
	for i, t := range toks {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s:%s", t.Kind.String()[:1], src[t.Off:t.End])
	}
	return b.String()
}

func TestTokenize(t *testing.T) {
	tests := []struct {
		name string
		lang Lang
		src  string
		want string
	}{
		{"c comments and strings", C, "/* a */ int x = 1; // b\nchar *s = \"//x\";",
			`k:int i:x p:= n:1 p:; k:char p:* i:s p:= p:" p:/ p:/ s:x p:" p:;`},
		{"c char and escapes", C, `c = '\''; s = "a\"b";`,
			`i:c p:= p:' p:' p:; i:s p:= p:" s:a s:b p:" p:;`},
		{"c unterminated string ends at newline", C, "x = \"abc\ny = 2;",
			"i:x p:= p:\" s:abc i:y p:= n:2 p:;"},
		{"c numbers", C, "a = 0x1F + 1.5e3 + 10ULL;", "i:a p:= n:0x1F p:+ n:1.5e3 p:+ n:10ULL p:;"},
		{"c preprocessor is not a comment", C, "#include <stdio.h>", "p:# i:include p:< i:stdio p:. i:h p:>"},
		{"go raw string spans lines", Go, "s := `a\nb` // c", "i:s p:: p:= p:` s:a s:b p:`"},
		{"go keywords", Go, "func f() {}", "k:func i:f p:( p:) p:{ p:}"},
		{"python comments and triple quotes", Python, "def f(): # c\n    \"\"\"doc \"x\"\n\"\"\"\n    return ''",
			`k:def i:f p:( p:) p:: p:""" s:doc s:x p:""" k:return p:' p:'`},
		{"python hash in string", Python, `x = "#no"`, `i:x p:= p:" p:# s:no p:"`},
		{"shell hash only at word start", Shell, "echo $# ${#a} # c\nx=1", "i:echo p:$ p:# p:$ p:{ p:# i:a p:} i:x p:= n:1"},
		{"shell single quotes are raw", Shell, `echo 'a\' b`, `i:echo p:' s:a p:\ p:' i:b`},
		{"rust lifetimes and chars", Rust, "fn f<'a>(x: &'a str) -> char { 'x' }",
			"k:fn i:f p:< p:' i:a p:> p:( i:x p:: p:& p:' i:a i:str p:) p:- p:> i:char p:{ s:'x' p:}"},
		{"rust escaped char", Rust, `let c = '\'';`, `k:let i:c p:= s:'\'' p:;`},
		{"rust nested comments", Rust, "/* a /* b */ c */ x", "i:x"},
		{"js template and dollar", JavaScript, "const $a = `x ${y}`;", "k:const i:$a p:= p:` s:x s:$ p:{ s:y p:} p:` p:;"},
		{"php comments", PHP, "<?php # a\n$x = 1; // b\n/* c */ echo $x;", "p:< p:? i:php i:$x p:= n:1 p:; k:echo i:$x p:;"},
		{"emacs lisp", EmacsLisp, "(defun foo-bar (x) ; c\n  \"Doc.\" (1+ x) ?\\( 'y)",
			`p:( k:defun i:foo-bar p:( i:x p:) p:" s:Doc. p:" p:( n:1+ i:x p:) i:?\( p:' i:y p:)`},
		{"text prose", Text, "Don't panic: it's 42.", "i:Don p:' i:t i:panic p:: i:it p:' i:s n:42 p:."},
		{"non-ascii identifiers", Go, "café := 1", "i:café p:: p:= n:1"},
		{"markdown fences", Markdown, "See:\n```c\n// c\nint x;\n```\nok",
			"i:See p:: k:int i:x p:; i:ok"},
		{"markdown untagged fence uses C rules", Markdown, "```\nx = 1; /* c */\n```\n", "i:x p:= n:1 p:;"},
		{"markdown tilde fence and unclosed", Markdown, "~~~ python\n# c\nx = 1\n", "i:x p:= n:1"},
		{"markdown inner backticks are not a close", Markdown, "````c\n```\nx\n````\ny", "p:` p:` p:` i:x i:y"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := show(tt.src, Tokenize(tt.lang, []byte(tt.src)))
			if got != tt.want {
				t.Errorf("Tokenize(%s, %q)\n got %s\nwant %s", tt.lang, tt.src, got, tt.want)
			}
		})
	}
}

func TestTokenLinesAndOffsets(t *testing.T) {
	src := "var a int\n/* two\nlines */ b\r\n\n  `s\ntr`;\nx"
	toks := Tokenize(Go, []byte(src))
	wantLines := []int32{1, 1, 1, 3, 5, 5, 6, 6, 6, 7} // var a int b ` s tr ` ; x
	if len(toks) != len(wantLines) {
		t.Fatalf("got %d tokens (%s), want %d", len(toks), show(src, toks), len(wantLines))
	}
	for i, tk := range toks {
		if tk.Line != wantLines[i] {
			t.Errorf("token %d %q: line %d, want %d", i, src[tk.Off:tk.End], tk.Line, wantLines[i])
		}
	}
}

// TestStringsSurviveReformatting: a literal's quotes and whitespace may change, as
// formatters and models change them, without changing its tokens.
func TestStringsSurviveReformatting(t *testing.T) {
	hashes := func(l Lang, src string) string {
		var b strings.Builder
		for _, tk := range Tokenize(l, []byte(src)) {
			fmt.Fprintf(&b, "%x ", tk.Hash)
		}
		return b.String()
	}
	for _, pair := range [][2]string{
		{`x = "abc def"`, `x = 'abc  def'`},
		{`def f():\n    """Frob the\n    widget."""`, `def f():\n  """Frob the widget."""`},
	} {
		if hashes(Python, pair[0]) != hashes(Python, pair[1]) {
			t.Errorf("%q and %q tokenize differently", pair[0], pair[1])
		}
	}
	if hashes(Python, `x = "abc def"`) == hashes(Python, `x = "abcdef"`) {
		t.Errorf("joining two words of a literal does not change its tokens")
	}
}

// TestHalfALiteral: a passage that starts inside a multi-line literal tokenizes as
// it does in its source, although the lexer reads its quotes the other way round.
func TestHalfALiteral(t *testing.T) {
	src := "(defun frob (x)\n  \"Frob X, the widget.\nReturn it frobbed.\"\n  (let ((y (1+ x)))\n    (message \"frobbed %s\" y)\n    y))\n"
	whole := Tokenize(EmacsLisp, []byte(src))
	cut := strings.Index(src, "Return")
	part := Tokenize(EmacsLisp, []byte(src[cut:]))
	tail := whole[len(whole)-len(part):]
	for i := range part {
		if part[i].Hash != tail[i].Hash {
			t.Fatalf("token %d differs: %s vs %s", i, show(src[cut:], part[i:i+1]), show(src, tail[i:i+1]))
		}
	}
}

func TestLongTokensStream(t *testing.T) {
	// Tokens longer than maxInline are hashed as they stream; the hash must not depend
	// on where the text was cut.
	long := strings.Repeat("x", 3*maxInline+7)
	src := "a = \"" + long + "\"; " + long + " = 1;"
	whole := Tokenize(Go, []byte(src))
	for _, cut := range []int{1, 5, maxInline, maxInline + 6, 2*maxInline + 1, len(src) - 3} {
		s := NewStream(DefaultParams, Go)
		s.Write([]byte(src[:cut]))
		s.Write([]byte(src[cut:]))
		s.Close()
		if show(src, s.Tokens) != show(src, whole) || s.Tokens[3].Hash != whole[3].Hash || s.Tokens[6].Hash != whole[6].Hash {
			t.Errorf("cut at %d: tokens differ from the whole text's", cut)
		}
	}
	if whole[6].Kind != Ident || whole[3].Kind != String {
		t.Errorf("long identifier has kind %s, long literal word %s", whole[6].Kind, whole[3].Kind)
	}
}

func TestLangForPath(t *testing.T) {
	for name, want := range map[string]string{"a/b.c": "c", "x.H": "c", "k.rs": "rust", "m.el": "emacs-lisp",
		"s.bash": "shell", "y.tsx": "typescript", "z.md": "", "Makefile": "", "q.pyi": "python"} {
		l, ok := LangForPath(name)
		got := ""
		if ok {
			got = l.String()
		}
		if got != want {
			t.Errorf("LangForPath(%q) = %q, want %q", name, got, want)
		}
	}
	for name, want := range map[string]Lang{"C++": Cpp, "py": Python, "golang": Go, "elisp": EmacsLisp, "sh": Shell} {
		if l, ok := LangByName(name); !ok || l != want {
			t.Errorf("LangByName(%q) = %v, %v; want %v", name, l, ok, want)
		}
	}
}

func TestDirective(t *testing.T) {
	for _, tt := range []struct {
		lang Lang
		line string
		want bool
	}{
		{C, "#include <linux/module.h>", true},
		{C, "#define FOO 1", false},
		{Go, "import \"fmt\"", true},
		{Go, "package main", true},
		{Python, "from os import path", true},
		{Python, "imports = 3", false},
		{EmacsLisp, "(require 'cl-lib)", true},
		{EmacsLisp, "(defun f ())", false},
		{Rust, "use std::io;", true},
		{CSharp, "using System;", true},
		{C, "x = include;", false},
	} {
		if got := Directive(Tokenize(tt.lang, []byte(tt.line))); got != tt.want {
			t.Errorf("Directive(%q) = %v, want %v", tt.line, got, tt.want)
		}
	}
}
