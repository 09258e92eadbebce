package corpus

import (
	"flag"
	"fmt"
	"path"
	"strings"
	"sync"
)

// DefaultMaxFileSize is the default of Options.MaxFileSize: 1 MiB. Hand-written source
// files are rarely bigger; the ones that are tend to be tables and generated code.
const DefaultMaxFileSize = 1 << 20

// Options say which files of a source Walk hands to its visitor. The zero value is
// ready to use: files up to DefaultMaxFileSize, every path included.
type Options struct {
	// MaxFileSize is the largest file, in bytes after decompression, that Walk reads;
	// bigger files are skipped as "huge". Zero or less means DefaultMaxFileSize.
	MaxFileSize int64
	// Include, when not empty, restricts the walk to files whose path matches one of its
	// patterns; see Match for the pattern syntax. License files are read whatever
	// Include says: they decide the license of the files that are included.
	Include []string
	// Exclude leaves out files whose path matches one of its patterns, license files
	// included. Exclude wins over Include.
	Exclude []string
	// OnSkip, if set, is called with the path and the reason of every skipped file, in
	// Walk's goroutine; for a verbose log.
	OnSkip func(path, reason string)
}

// Flags registers the options as flags of fs, with the current values as defaults:
// -max-file-size, -include and -exclude (both may repeat).
func (o *Options) Flags(fs *flag.FlagSet) {
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	fs.Int64Var(&o.MaxFileSize, "max-file-size", o.MaxFileSize,
		"skip files bigger than this many `bytes` (after decompression) as huge")
	fs.Var((*patternList)(&o.Include), "include",
		"walk only files whose path matches this `glob` (repeatable; '**' matches any number of directories; a pattern matching a directory matches what it holds)")
	fs.Var((*patternList)(&o.Exclude), "exclude",
		"leave out files whose path matches this `glob` (repeatable; same syntax as -include)")
}

// maxFileSize returns MaxFileSize or its default.
func (o *Options) maxFileSize() int64 {
	if o.MaxFileSize <= 0 {
		return DefaultMaxFileSize
	}
	return o.MaxFileSize
}

// check returns an error naming the first malformed pattern.
func (o *Options) check() error {
	for _, list := range [][]string{o.Include, o.Exclude} {
		for _, p := range list {
			if err := checkPattern(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// selects reports whether the options let the file at slash path p through, and
// whether include is consulted (false for license files).
func (o *Options) selects(p string, include bool) bool {
	for _, pat := range o.Exclude {
		if Match(pat, p) {
			return false
		}
	}
	if !include || len(o.Include) == 0 {
		return true
	}
	for _, pat := range o.Include {
		if Match(pat, p) {
			return true
		}
	}
	return false
}

// patternList is a flag.Value that collects repeated glob flags.
type patternList []string

func (l *patternList) String() string { return strings.Join(*l, ",") }

func (l *patternList) Set(s string) error {
	if err := checkPattern(s); err != nil {
		return err
	}
	*l = append(*l, s)
	return nil
}

// checkPattern returns an error if pattern is malformed.
func checkPattern(pattern string) error {
	if len(splitPattern(pattern)) == 0 {
		return fmt.Errorf("corpus: empty pattern %q", pattern)
	}
	for _, seg := range splitPattern(pattern) {
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("corpus: bad pattern %q: %w", pattern, err)
		}
	}
	return nil
}

// Match reports whether pattern matches the slash path p or one of its leading
// directories. The pattern is matched segment by segment with path.Match, so "*" does
// not cross a "/"; a segment "**" matches any number of segments, none included. So
// "kernel" matches everything under kernel/, "kernel/*.c" the C files right in it,
// "**/*.c" every C file and "**/test" every directory named test. A leading "./" and
// a trailing "/" are ignored. A malformed pattern matches nothing.
func Match(pattern, p string) bool {
	segs := strings.Split(p, "/")
	return matchSegs(splitPattern(pattern), segs)
}

var splitCache sync.Map // pattern -> []string

func splitPattern(pattern string) []string {
	if v, ok := splitCache.Load(pattern); ok {
		return v.([]string)
	}
	p := strings.TrimPrefix(pattern, "./")
	p = strings.Trim(p, "/")
	var segs []string
	if p != "" {
		segs = strings.Split(p, "/")
	}
	splitCache.Store(pattern, segs)
	return segs
}

func matchSegs(pat, segs []string) bool {
	if len(pat) == 0 {
		return true
	}
	if pat[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if matchSegs(pat[1:], segs[i:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	ok, err := path.Match(pat[0], segs[0])
	return ok && err == nil && matchSegs(pat[1:], segs[1:])
}
