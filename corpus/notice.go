package corpus

import (
	"regexp"
	"sort"
	"strings"
)

// noticeText normalises a file header for notice matching: lower case, every byte
// other than a letter, a digit, '.' and '+' turned to a space, runs of spaces
// collapsed. Comment punctuation, line breaks and "and/or" stop mattering.
func noticeText(b []byte) string {
	out := make([]byte, 0, len(b))
	space := true
	for _, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '.', c == '+', c >= 0x80:
		default:
			if !space {
				out = append(out, ' ')
			}
			space = true
			continue
		}
		out = append(out, c)
		space = false
	}
	return string(out)
}

// A licenseFamily is a license that notices name in words, with its versions.
type licenseFamily struct {
	id       string            // SPDX id prefix, e.g. "GPL"
	versions map[string]string // version as written -> SPDX version
	gnu      bool              // takes "-only" / "-or-later"
	// unversioned is the SPDX id for a notice that gives no version, "" when such a
	// notice says too little. The GNU licenses let the recipient choose any version
	// when none is given (GPL-2.0 section 9, GPL-3.0 section 14), so a bare "GNU
	// General Public License" is GPL-1.0-or-later.
	unversioned string
}

var (
	gplFamily = &licenseFamily{id: "GPL", gnu: true, unversioned: "GPL-1.0-or-later",
		versions: map[string]string{"1": "1.0", "1.0": "1.0", "2": "2.0", "2.0": "2.0", "3": "3.0", "3.0": "3.0"}}
	lesserFamily = &licenseFamily{id: "LGPL", gnu: true, unversioned: "LGPL-2.1-or-later",
		versions: map[string]string{"2": "2.0", "2.0": "2.0", "2.1": "2.1", "3": "3.0", "3.0": "3.0"}}
	libraryFamily = &licenseFamily{id: "LGPL", gnu: true, unversioned: "LGPL-2.0-or-later",
		versions: map[string]string{"2": "2.0", "2.0": "2.0", "2.1": "2.1"}}
	agplFamily = &licenseFamily{id: "AGPL", gnu: true, unversioned: "AGPL-3.0-or-later",
		versions: map[string]string{"1": "1.0", "1.0": "1.0", "3": "3.0", "3.0": "3.0"}}
	mplFamily = &licenseFamily{id: "MPL",
		versions: map[string]string{"1.0": "1.0", "1.1": "1.1", "2": "2.0", "2.0": "2.0"}}
	eplFamily = &licenseFamily{id: "EPL",
		versions: map[string]string{"1": "1.0", "1.0": "1.0", "2": "2.0", "2.0": "2.0"}}
	apacheFamily = &licenseFamily{id: "Apache",
		versions: map[string]string{"1.0": "1.0", "1.1": "1.1", "2": "2.0", "2.0": "2.0"}}
	boostFamily = &licenseFamily{id: "BSL", versions: map[string]string{"1": "1.0", "1.0": "1.0"}}
)

// mentionPhrases name licenses that have versions. A phrase ending in "licen" also
// matches "license" and "licence".
var mentionPhrases = []struct {
	phrase string
	fam    *licenseFamily
}{
	{"affero general public licen", agplFamily}, {"gnu agpl", agplFamily},
	{"lesser general public licen", lesserFamily}, {"gnu lgpl", lesserFamily},
	{"library general public licen", libraryFamily}, {"gnu library gpl", libraryFamily},
	{"gnu general public licen", gplFamily}, {"gnu public licen", gplFamily}, {"gnu gpl", gplFamily},
	{"mozilla public licen", mplFamily}, {"eclipse public licen", eplFamily},
	{"apache licen", apacheFamily}, {"apache software licen", apacheFamily},
	{"boost software licen", boostFamily},
}

// gplTokens are abbreviations that count as a license name only with a version right
// after them ("GPLv2", "LGPL-2.1", "GPL version 2"): a bare "gpl" is also a word of
// MODULE_LICENSE("GPL") and of prose.
var gplTokens = []struct {
	token string
	fam   *licenseFamily
}{{"agpl", agplFamily}, {"lgpl", lesserFamily}, {"gpl", gplFamily}}

var gplTokenVersionRE = regexp.MustCompile(`^ ?(?:v|version )?\d(?:\.\d)?`)

// A mention is a license name found in notice text.
type mention struct {
	start, stop int
	fam         *licenseFamily
}

// mentions returns the license names in text in order, without overlaps. It scans for
// literals, which is many times faster than one regular expression of alternatives.
func mentions(text string) []mention {
	var ms []mention
	for _, p := range mentionPhrases {
		for off := 0; ; {
			i := strings.Index(text[off:], p.phrase)
			if i < 0 {
				break
			}
			start := off + i
			stop := start + len(p.phrase)
			for stop < len(text) && text[stop] != ' ' && text[stop] != '.' {
				stop++
			}
			if start == 0 || text[start-1] == ' ' {
				ms = append(ms, mention{start, stop, p.fam})
			}
			off = stop
		}
	}
	for _, t := range gplTokens {
		for off := 0; ; {
			i := strings.Index(text[off:], t.token)
			if i < 0 {
				break
			}
			start := off + i
			stop := start + len(t.token)
			off = stop
			if start > 0 && text[start-1] != ' ' {
				continue
			}
			if loc := gplTokenVersionRE.FindStringIndex(text[stop:]); loc != nil {
				end := stop + loc[1]
				if end == len(text) || !isWordByte(text[end]) {
					ms = append(ms, mention{start, end, t.fam})
				}
			}
		}
	}
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].start != ms[j].start {
			return ms[i].start < ms[j].start
		}
		return ms[i].stop > ms[j].stop
	})
	out := ms[:0]
	for _, m := range ms {
		if len(out) > 0 && m.start < out[len(out)-1].stop {
			continue
		}
		out = append(out, m)
	}
	return out
}

func isWordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
}

var (
	// versionNextRE reads a version right after a license name ("LGPL 2.1", "GPLv2",
	// "License, Version 2.0", "License - v 1.0").
	versionNextRE = regexp.MustCompile(`^ ?(?:version |v\.? ?|ver\.? )?(\d+(?:\.\d+)?)(\+)?`)
	// versionRE reads a version further on ("as published by the FSF; either version 2").
	versionRE = regexp.MustCompile(`\b(?:version|v)\.? ?(\d+(?:\.\d+)?)(\+)?`)
	// versionBeforeRE reads a version that comes first ("version 2 of the GNU GPL").
	versionBeforeRE   = regexp.MustCompile(`\b(?:version|v)\.? ?(\d+(?:\.\d+)?)(\+)?((?: or| and)? (?:at your option )?(?:any )?later(?: version)?)?(?: only)? of the $`)
	trailingVersionRE = regexp.MustCompile(`\d(?:\.\d)?$`)
	laterRE           = regexp.MustCompile(`\bany later\b|\bor later\b|\blater version\b|\bor newer\b|\bor any later\b`)
)

// Windows of notice text, in bytes of normalised text.
const (
	versionReach = 160 // from a license name to its version
	laterReach   = 100 // from a version to "or (at your option) any later version"
)

// orSignals are phrases by which a notice offers a choice between licenses.
var orSignals = []string{"alternatively", "dual licens", "dual licenc", "dually licens",
	"dual license", "at your choice", "your choice of", "at your option under", "under either",
	"terms of either", "you may choose", "either the gnu", "either under", "licensee s option",
	"can choose", "may be distributed under either"}

// Permissive licenses, recognised by a sentence of their text.
var permissiveTexts = []struct {
	phrase string
	id     func(text string) string
}{
	{"permission is hereby granted free of charge to any person obtaining a copy", func(string) string { return "MIT" }},
	{"under the mit license", func(string) string { return "MIT" }},
	{"permission to use copy modify and or distribute this software for any purpose with or without fee is hereby granted", func(t string) string {
		if strings.Contains(t, "provided that the above copyright notice and this permission notice appear in all copies") {
			return "ISC"
		}
		return "0BSD"
	}},
	{"redistribution and use in source and binary forms with or without modification are permitted", func(t string) string {
		switch {
		case strings.Contains(t, "all advertising materials mentioning features or use of this software must display"):
			return "BSD-4-Clause"
		case strings.Contains(t, "may not be used to endorse or promote products derived from this software"),
			strings.Contains(t, "neither the name"):
			return "BSD-3-Clause"
		}
		return "BSD-2-Clause"
	}},
}

// noticeLicense returns the SPDX expression of the license notices in a file header,
// or "". It knows the GNU GPL, LGPL (Lesser and Library) and AGPL with their versions
// and "or (at your option) any later version", the MPL, EPL, Apache and Boost licenses
// with versions, and MIT, ISC, 0BSD and the BSD licenses by their text. A notice of a
// GNU license without a version counts only when no versioned GNU notice is present
// ("see the GNU General Public License for more details" under an LGPL notice). When
// the header names several licenses, they join with OR only when it says there is a
// choice ("Alternatively", "dual licensed", "at your choice", "under either");
// otherwise noticeLicense returns "" and leaves the decision to the repository.
func noticeLicense(header []byte) string {
	text := noticeText(header)
	versioned := make(map[string]bool)
	unversioned := make(map[string]bool)
	gnuVersioned := false
	ms := mentions(text)
	for i, m := range ms {
		end := len(text)
		if i+1 < len(ms) {
			end = ms[i+1].start
		}
		if id := mentionLicense(text, m.start, m.stop, end, m.fam); id != "" {
			versioned[id] = true
			gnuVersioned = gnuVersioned || m.fam.gnu
		} else if m.fam.unversioned != "" {
			unversioned[m.fam.unversioned] = true
		}
	}
	ids := mergeLater(versioned)
	if !gnuVersioned {
		for id := range unversioned {
			ids = append(ids, id)
		}
	}
	for _, p := range permissiveTexts {
		if strings.Contains(text, p.phrase) {
			ids = append(ids, p.id(text))
		}
	}
	ids = dedupe(ids)
	switch {
	case len(ids) == 0:
		return ""
	case len(ids) == 1:
		return ids[0]
	}
	for _, s := range orSignals {
		if strings.Contains(text, s) {
			return strings.Join(ids, " OR ")
		}
	}
	return ""
}

// mentionLicense returns the versioned SPDX id of the license named at text[start:stop],
// reading its version after the name (up to end, where the next name starts) or just
// before it, or "" when it has none.
func mentionLicense(text string, start, stop, end int, fam *licenseFamily) string {
	ver, plus, verEnd := "", false, -1
	name := text[start:stop]
	if m := trailingVersionRE.FindString(name); m != "" {
		ver, verEnd = m, stop // "gplv2", "lgpl 2.1"
		plus = strings.HasPrefix(text[stop:], "+")
	} else if m := versionNextRE.FindStringSubmatchIndex(text[stop:]); m != nil {
		ver, plus, verEnd = text[stop+m[2]:stop+m[3]], m[4] >= 0, stop+m[1]
	} else if m := versionRE.FindStringSubmatchIndex(text[stop:min(end, stop+versionReach)]); m != nil {
		ver, plus, verEnd = text[stop+m[2]:stop+m[3]], m[4] >= 0, stop+m[1]
	} else if m := versionBeforeRE.FindStringSubmatch(text[max(0, start-80):start]); m != nil {
		ver, plus = m[1], m[2] != "" || m[3] != ""
		verEnd = stop
	}
	v, ok := fam.versions[ver]
	if !ok {
		return ""
	}
	id := fam.id + "-" + v
	if !fam.gnu {
		return id
	}
	if plus || laterRE.MatchString(text[verEnd:min(len(text), verEnd+laterReach, max(end, verEnd))]) {
		return id + "-or-later"
	}
	return id + "-only"
}

// mergeLater returns the ids of a set, with "X-only" dropped where "X-or-later" is
// present too (a notice and its restatement).
func mergeLater(set map[string]bool) []string {
	var ids []string
	for id := range set {
		if base, ok := strings.CutSuffix(id, "-only"); ok && set[base+"-or-later"] {
			continue
		}
		ids = append(ids, id)
	}
	return ids
}

func dedupe(ids []string) []string {
	sort.Strings(ids)
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}
