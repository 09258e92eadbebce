package corpus

import (
	"flag"
	"strings"

	"cleanroom/corpus/license"
)

// DefaultMaxFileSize is the default of Options.MaxFileSize: 1 MiB. Hand-written source
// files are rarely bigger; the ones that are tend to be tables and generated code.
const DefaultMaxFileSize = 1 << 20

// DefaultMaxRatio is the default of Options.MaxRatio. Source archives inflate 3 to 15
// times (linux-source-6.1.tar.xz: about 9); a bomb, thousands of times.
const DefaultMaxRatio = 100

// bombFloor is how much an archive may inflate before its ratio is checked: small
// archives of repetitive text are not bombs. (A variable for the tests.)
var bombFloor int64 = 256 << 20

// Options say which files of a source Walk hands to its visitor. The zero value is
// ready to use: files up to DefaultMaxFileSize, every path included.
type Options struct {
	// MaxFileSize is the largest file, in bytes after decompression, that Walk reads;
	// bigger files are skipped as "huge". Zero or less means DefaultMaxFileSize.
	MaxFileSize int64
	// MaxRatio bounds how much an archive (tar, compressed or not, or zip) may
	// inflate: once it has given more than 256 MiB, and more than MaxRatio times the
	// bytes read from it, it is a bomb and Walk ends with an error wrapping ErrBomb.
	// (Each file is bounded by MaxFileSize besides.) Zero means DefaultMaxRatio;
	// negative, no limit.
	MaxRatio int64
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

// maxRatio returns MaxRatio or its default; 0 means no limit.
func (o *Options) maxRatio() int64 {
	switch {
	case o.MaxRatio == 0:
		return DefaultMaxRatio
	case o.MaxRatio < 0:
		return 0
	}
	return o.MaxRatio
}

// check returns an error naming the first malformed pattern.
func (o *Options) check() error {
	for _, list := range [][]string{o.Include, o.Exclude} {
		for _, p := range list {
			if err := license.CheckPattern(p); err != nil {
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
		if license.Match(pat, p) {
			return false
		}
	}
	if !include || len(o.Include) == 0 {
		return true
	}
	for _, pat := range o.Include {
		if license.Match(pat, p) {
			return true
		}
	}
	return false
}

// patternList is a flag.Value that collects repeated glob flags.
type patternList []string

func (l *patternList) String() string { return strings.Join(*l, ",") }

func (l *patternList) Set(s string) error {
	if err := license.CheckPattern(s); err != nil {
		return err
	}
	*l = append(*l, s)
	return nil
}
