package corpus

import (
	"bytes"
	"strings"
)

// Where FileLicense found a license.
const (
	FromSPDXLine = "spdx-line" // an "SPDX-License-Identifier:" line
	FromNotice   = "notice"    // a license notice in the header
)

// Limits of FileLicense's search.
const (
	spdxLines    = 30      // lines searched for an SPDX-License-Identifier line
	noticeWindow = 8 << 10 // bytes searched for a license notice
)

var spdxTag = []byte("spdx-license-identifier:")

// FileLicense returns the license a file states about itself, and where it found it:
// the expression on an "SPDX-License-Identifier:" line among the first 30 lines, in any
// comment style (//, /* */, #, ;, --, <!-- -->, ...), else the license of a notice in
// the first 8 KiB (see noticeLicense), else "". The expression is returned as written
// (the kernel's deprecated "GPL-2.0+" included); Classify and Policy.Keep parse it.
func FileLicense(data []byte) (expr string, from string) {
	if expr := spdxLine(data); expr != "" {
		return expr, FromSPDXLine
	}
	if expr := noticeLicense(data[:min(len(data), noticeWindow)]); expr != "" {
		return expr, FromNotice
	}
	return "", ""
}

// spdxLine returns the expression of the first SPDX-License-Identifier line, or "".
// The tag counts only after comment punctuation at the start of a line, so that a
// program that writes such lines ("SPDX-License-Identifier: %s") is not taken at its word.
func spdxLine(data []byte) string {
	n := 0
	for line := range bytes.Lines(data) {
		if n++; n > spdxLines {
			break
		}
		i := indexFold(line, spdxTag)
		if i < 0 {
			continue
		}
		if !commentLead(line[:i]) {
			continue
		}
		expr := string(bytes.TrimSpace(line[i+len(spdxTag):]))
		for _, end := range []string{"*/", "-->", "*)", "-}", "%>", "#}", "--}}"} {
			expr = strings.TrimSpace(strings.TrimSuffix(expr, end))
		}
		expr = strings.Trim(expr, `"'`)
		expr = strings.Join(strings.Fields(expr), " ")
		if expr != "" {
			return expr
		}
	}
	return ""
}

// commentLead reports whether the text before a tag is only comment punctuation and
// the comment words of assembler, m4, batch and Fortran files.
func commentLead(b []byte) bool {
	s := strings.ToLower(strings.Trim(string(b), commentPunct+"@"))
	switch s {
	case "", "rem", "dnl", "c", "comment":
		return true
	}
	return false
}

// indexFold returns the index of the lower-case ASCII needle in s, ignoring case, or -1.
func indexFold(s, needle []byte) int {
	for i := 0; i+len(needle) <= len(s); i++ {
		j := 0
		for ; j < len(needle); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != needle[j] {
				break
			}
		}
		if j == len(needle) {
			return i
		}
	}
	return -1
}
