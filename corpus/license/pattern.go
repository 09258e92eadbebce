package license

import (
	"fmt"
	"path"
	"strings"
	"sync"
)

// CheckPattern returns an error if pattern is malformed.
func CheckPattern(pattern string) error {
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
