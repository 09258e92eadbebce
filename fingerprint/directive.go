package fingerprint

import "github.com/cespare/xxhash/v2"

// Hashes of the tokens that open directive lines.
var (
	hashHash     = xxhash.Sum64String("#")
	hashParen    = xxhash.Sum64String("(")
	directives   = hashSet("include", "import", "require", "using", "use", "package", "from", "provide", "require_once", "include_once")
	cDirectives  = hashSet("include", "import", "include_next")
	lispRequires = hashSet("require", "provide", "eval-when-compile", "declare-function")
)

func hashSet(words ...string) map[uint64]bool {
	m := map[uint64]bool{}
	for _, w := range words {
		m[xxhash.Sum64String(w)] = true
	}
	return m
}

// Directive reports whether a line whose first tokens are head (one or two of them)
// is an include or import line: #include <...>, import x, from x import y, package
// x, using x; use x::y; (require 'x). Such lines say what code uses, not what it
// does: the same lists open thousands of files, and they are no evidence of copying.
// It reports false until it has seen enough of the line to say.
func Directive(head []Token) bool {
	if len(head) == 0 {
		return false
	}
	first := head[0].Hash
	switch {
	case first == hashHash:
		return len(head) > 1 && cDirectives[head[1].Hash]
	case first == hashParen:
		return len(head) > 1 && lispRequires[head[1].Hash]
	}
	return head[0].Kind != String && directives[first]
}
