package fingerprint

import (
	"bytes"
	"regexp"
)

// guesses are tried in order; the first whose pattern occurs in the text wins.
var guesses = []struct {
	lang Lang
	re   *regexp.Regexp
}{
	{Markdown, regexp.MustCompile("(?m)^ {0,3}(```|~~~)")},
	{PHP, regexp.MustCompile(`<\?php`)},
	{EmacsLisp, regexp.MustCompile(`(?m)^\s*\((defun|defvar|defcustom|defmacro|require|provide|setq|use-package)\s`)},
	{Shell, regexp.MustCompile(`(?m)\A#!\s*/(usr/)?bin/(env\s+)?(ba|z|k)?sh\b|^\s*(fi|done|esac)\s*$`)},
	{Python, regexp.MustCompile(`(?m)^\s*(def \w+\(.*\)\s*(->.*)?:|class \w+.*:\s*$|from [\w.]+ import |import \w+\s*$|if __name__ ==)`)},
	{Go, regexp.MustCompile(`(?m)^package \w+\s*$|^func (\(\w+ \*?\w+\) )?\w+\(|\w+ := `)},
	{Rust, regexp.MustCompile(`(?m)\bfn \w+(<.*>)?\(|\blet mut \w|^\s*impl\b|^\s*use \w+::`)},
	{JavaScript, regexp.MustCompile(`(?m)^\s*(const|let) \w+ = |\bfunction\s*\w*\s*\(|=> \{|require\(['"]|^\s*export (default )?`)},
}

// Guess returns the language whose rules suit text best when its name is unknown:
// markdown when it has code fences, else the language its telltale lines point to,
// else C, whose comments and strings most languages share. It looks at the first
// 8 KiB.
func Guess(text []byte) Lang {
	if len(text) > 8<<10 {
		text = text[:8<<10]
	}
	if len(bytes.TrimSpace(text)) == 0 {
		return Text
	}
	for _, g := range guesses {
		if g.re.Match(text) {
			return g.lang
		}
	}
	return C
}
