package fingerprint

import (
	"path"
	"strings"
)

// Lang is a language the tokenizer knows. Its rules say which bytes start comments and
// string literals and which bytes may appear in identifiers; everything else is shared.
// The zero value is Text, the rules for prose and unknown input.
type Lang uint8

// The languages the tokenizer serves. Languages that share a lexical family (C, C++,
// Objective-C, Java, ...) tokenize the same code the same way, so a passage copied from
// a .h file into a .cpp answer still matches.
const (
	Text Lang = iota
	C
	Cpp
	ObjectiveC
	Go
	Java
	Kotlin
	Scala
	Swift
	JavaScript
	TypeScript
	CSharp
	Rust
	Python
	PHP
	Shell
	EmacsLisp
	Markdown
	numLangs
)

// rules are the lexical rules of one language.
type rules struct {
	name    string
	aliases []string // names used in markdown fences, lower case
	exts    []string // file name extensions, with the dot, lower case

	lineComments []string // each starts a comment that runs to the end of the line
	blockOpen    string   // "" when the language has no block comments
	blockClose   string
	nestedBlocks bool // block comments nest (Rust, Kotlin, Scala, Swift)
	hashAtWord   bool // '#' starts a comment only at the start of a word (shell)

	quotes     string // bytes that open a string literal
	multiline  string // of quotes, those whose literals may span lines
	rawQuotes  string // of quotes, those without backslash escapes
	triple     string // of quotes, those that also open a triple-quoted literal ("""...""")
	rustChars  bool   // '\'' opens a char literal only when one closes it ('a' vs the lifetime 'a)
	identExtra string // bytes besides [A-Za-z0-9_] and non-ASCII that continue an identifier
	identStart string // of identExtra, those that may also start one
	identEsc   bool   // a backslash escapes the next byte inside an identifier (Lisp)

	keywords map[string]bool
}

func words(s string) map[string]bool {
	m := make(map[string]bool)
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

const (
	cKeywords = `auto break case char const continue default do double else enum extern float for goto
		if inline int long register restrict return short signed sizeof static struct switch typedef
		union unsigned void volatile while _Bool _Complex _Atomic _Static_assert bool true false NULL`
	cppKeywords = cKeywords + ` alignas alignof and asm catch class constexpr const_cast decltype
		delete dynamic_cast explicit export friend mutable namespace new noexcept not nullptr operator
		or private protected public reinterpret_cast static_assert static_cast template this throw try
		typeid typename using virtual override final concept requires co_await co_return co_yield`
	javaKeywords = `abstract assert boolean break byte case catch char class const continue default do
		double else enum extends final finally float for goto if implements import instanceof int
		interface long native new package private protected public return short static strictfp super
		switch synchronized this throw throws transient try void volatile while true false null var
		record yield sealed permits`
	jsKeywords = `break case catch class const continue debugger default delete do else export extends
		finally for function if import in instanceof new return super switch this throw try typeof var
		void while with yield let static async await of true false null undefined`
	tsKeywords = jsKeywords + ` interface type enum implements private protected public readonly
		declare namespace module abstract as any boolean number string symbol never unknown keyof
		infer is`
)

var langRules = [numLangs]*rules{
	Text: {name: "text", aliases: []string{"text", "txt", "plain", "plaintext"}},
	C: {name: "c", aliases: []string{"c", "h"}, exts: []string{".c", ".h"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/",
		quotes: `"'`, keywords: words(cKeywords)},
	Cpp: {name: "cpp", aliases: []string{"cpp", "c++", "cc", "cxx", "hpp", "cuda", "cu"},
		exts:         []string{".cc", ".cpp", ".cxx", ".c++", ".hh", ".hpp", ".hxx", ".h++", ".ipp", ".tcc", ".cu", ".cuh", ".ino"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/",
		quotes: `"'`, keywords: words(cppKeywords)},
	ObjectiveC: {name: "objective-c", aliases: []string{"objective-c", "objc", "objectivec", "objective-c++", "objc++"},
		exts:         []string{".m", ".mm"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/",
		quotes: `"'`, keywords: words(cKeywords + " self super nil YES NO id interface implementation end property")},
	Go: {name: "go", aliases: []string{"go", "golang"}, exts: []string{".go"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/",
		quotes: "\"'`", multiline: "`", rawQuotes: "`",
		keywords: words(`break case chan const continue default defer else fallthrough for func go goto
			if import interface map package range return select struct switch type var true false nil iota`)},
	Java: {name: "java", aliases: []string{"java"}, exts: []string{".java"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/",
		quotes: `"'`, multiline: `"`, triple: `"`, keywords: words(javaKeywords)},
	Kotlin: {name: "kotlin", aliases: []string{"kotlin", "kt", "kts"}, exts: []string{".kt", ".kts"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/", nestedBlocks: true,
		quotes: `"'`, multiline: `"`, triple: `"`, identExtra: "$",
		keywords: words(`as break class continue do else false for fun if in interface is null object
			package return super this throw true try typealias typeof val var when while`)},
	Scala: {name: "scala", aliases: []string{"scala", "sc"}, exts: []string{".scala", ".sc"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/", nestedBlocks: true,
		quotes: `"'`, multiline: `"`, triple: `"`,
		keywords: words(`abstract case catch class def do else extends false final finally for forSome
			if implicit import lazy match new null object override package private protected return
			sealed super this throw trait try true type val var while with yield`)},
	Swift: {name: "swift", aliases: []string{"swift"}, exts: []string{".swift"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/", nestedBlocks: true,
		quotes: `"`, multiline: `"`, triple: `"`,
		keywords: words(`associatedtype class deinit enum extension fileprivate func import init inout
			internal let open operator private protocol public static struct subscript typealias var
			break case continue default defer do else fallthrough for guard if in repeat return switch
			where while as catch false is nil rethrows super self Self throw throws true try`)},
	JavaScript: {name: "javascript", aliases: []string{"javascript", "js", "jsx", "node", "mjs", "cjs"},
		exts:         []string{".js", ".jsx", ".mjs", ".cjs"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/",
		quotes: "\"'`", multiline: "`", identExtra: "$", identStart: "$", keywords: words(jsKeywords)},
	TypeScript: {name: "typescript", aliases: []string{"typescript", "ts", "tsx"},
		exts:         []string{".ts", ".tsx", ".mts", ".cts"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/",
		quotes: "\"'`", multiline: "`", identExtra: "$", identStart: "$", keywords: words(tsKeywords)},
	CSharp: {name: "csharp", aliases: []string{"csharp", "c#", "cs"}, exts: []string{".cs"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/",
		quotes: `"'`, keywords: words(`abstract as base bool break byte case catch char checked class const
			continue decimal default delegate do double else enum event explicit extern false finally
			fixed float for foreach goto if implicit in int interface internal is lock long namespace
			new null object operator out override params private protected public readonly ref return
			sbyte sealed short sizeof stackalloc static string struct switch this throw true try typeof
			uint ulong unchecked unsafe ushort using virtual void volatile while var async await`)},
	Rust: {name: "rust", aliases: []string{"rust", "rs"}, exts: []string{".rs"},
		lineComments: []string{"//"}, blockOpen: "/*", blockClose: "*/", nestedBlocks: true,
		quotes: `"'`, multiline: `"`, rustChars: true,
		keywords: words(`as async await break const continue crate dyn else enum extern false fn for if
			impl in let loop match mod move mut pub ref return self Self static struct super trait true
			type unsafe use where while`)},
	Python: {name: "python", aliases: []string{"python", "py", "python3", "py3"}, exts: []string{".py", ".pyi"},
		lineComments: []string{"#"}, quotes: `"'`, triple: `"'`,
		keywords: words(`False None True and as assert async await break class continue def del elif
			else except finally for from global if import in is lambda nonlocal not or pass raise
			return try while with yield match case`)},
	PHP: {name: "php", aliases: []string{"php"}, exts: []string{".php", ".phtml", ".inc"},
		lineComments: []string{"//", "#"}, blockOpen: "/*", blockClose: "*/",
		quotes: `"'`, multiline: `"'`, identExtra: "$", identStart: "$",
		keywords: words(`abstract and array as break callable case catch class clone const continue
			declare default do echo else elseif empty enddeclare endfor endforeach endif endswitch
			endwhile extends final finally fn for foreach function global goto if implements include
			include_once instanceof insteadof interface isset list match namespace new or print private
			protected public readonly require require_once return static switch throw trait try unset
			use var while xor yield true false null`)},
	Shell: {name: "shell", aliases: []string{"shell", "sh", "bash", "zsh", "ksh", "console", "shellscript"},
		exts:         []string{".sh", ".bash", ".zsh", ".ksh"},
		lineComments: []string{"#"}, hashAtWord: true,
		quotes: `"'`, multiline: `"'`, rawQuotes: `'`,
		keywords: words(`if then else elif fi case esac for select while until do done in function time
			return local export readonly declare`)},
	EmacsLisp: {name: "emacs-lisp", aliases: []string{"emacs-lisp", "elisp", "el", "lisp", "emacs"},
		exts:         []string{".el"},
		lineComments: []string{";"}, quotes: `"`, multiline: `"`,
		identExtra: "-+*/<>=!?%&:.$^~", identStart: "-+*/<>=!?%&:.$^~", identEsc: true,
		keywords: words(`defun defmacro defvar defconst defcustom defgroup defsubst lambda let let* if
			when unless cond progn prog1 while dolist dotimes setq setq-local and or not nil t quote
			function catch throw condition-case unwind-protect save-excursion interactive require provide`)},
	Markdown: {name: "markdown", aliases: []string{"markdown", "md"}, exts: []string{".md", ".markdown"}},
}

// String returns the language's canonical name, as LangByName accepts it.
func (l Lang) String() string {
	if l >= numLangs {
		return "unknown"
	}
	return langRules[l].name
}

// Langs returns every language the tokenizer serves, Text and Markdown included.
func Langs() []Lang {
	ls := make([]Lang, numLangs)
	for i := range ls {
		ls[i] = Lang(i)
	}
	return ls
}

var (
	byExt  = map[string]Lang{}
	byName = map[string]Lang{}
)

func init() {
	for i, r := range langRules {
		l := Lang(i)
		for _, e := range r.exts {
			byExt[e] = l
		}
		byName[r.name] = l
		for _, a := range r.aliases {
			byName[a] = l
		}
	}
}

// LangByName returns the language a name or markdown fence tag (```rust, ```c++, ```py)
// denotes, ignoring case.
func LangByName(name string) (Lang, bool) {
	l, ok := byName[strings.ToLower(strings.TrimSpace(name))]
	return l, ok
}

// LangForPath returns the language of a source file, judged by its name. Markdown and
// text files are not source: LangForPath reports false for them and for every name the
// tokenizer does not serve.
func LangForPath(name string) (Lang, bool) {
	ext := strings.ToLower(path.Ext(name))
	l, ok := byExt[ext]
	if !ok || l == Markdown || l == Text {
		return Text, false
	}
	return l, true
}

// IsKeyword reports whether word is a reserved word of l.
func (l Lang) IsKeyword(word string) bool {
	return l < numLangs && langRules[l].keywords[word]
}
