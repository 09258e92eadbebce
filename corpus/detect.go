package corpus

import (
	"sort"
	"strings"
)

// MinConfidence is the lowest confidence at which a match of the license detector
// counts. Full license texts match at 0.95 and more; texts derived from one another
// (Apache-2.0 and ECL-2.0, BSD variants) match each other at 0.85 to 0.9, and below
// that matches are guesses.
const MinConfidence = 0.85

// sureConfidence is the confidence below which a license that a license file states
// in words (statedLicense) wins over the detector's match. Go's LICENSE, a BSD-3-Clause
// text, matches BSD-Source-Code at 0.88 and BSD-3-Clause lower.
const sureConfidence = 0.95

// maxNoticeFile is the size up to which a license file that the detector does not know
// is read as a notice.
const maxNoticeFile = 4 << 10

// nearMargin is how close to a file's best match another match must be to be the same
// text under another name: GPL-2.0-only and GPL-2.0-or-later share their text and
// score within 0.001 of each other, MPL-2.0 and MPL-2.0-no-copyleft-exception too.
const nearMargin = 0.02

// noticeConfidence is the confidence given to a license that a license file states as
// a notice (see FileLicense) rather than as a full text. An SPDX line gets 1.
const noticeConfidence = 0.9

// detected is one license found in one license file.
type detected struct {
	id   string
	conf float32
	file string
	text bool // from a full text, which does not say "-only" or "-or-later"
}

// pickMatch picks the license of one file from the detector's matches for it: the
// best match at MinConfidence or more, and among the matches within nearMargin of it
// (the same text under several names) the plainest name: the shortest once a
// "-only" or "-or-later" ending is dropped, "-only" before "-or-later" since the text
// alone does not grant later versions.
func pickMatch(matches map[string]float32) (detected, bool) {
	var best float32
	for id, conf := range matches {
		if !strings.HasPrefix(id, "deprecated_") {
			best = max(best, conf)
		}
	}
	if best < MinConfidence {
		return detected{}, false
	}
	var near []string
	for id, conf := range matches {
		if !strings.HasPrefix(id, "deprecated_") && conf >= best-nearMargin {
			near = append(near, id)
		}
	}
	sort.Slice(near, func(i, j int) bool {
		a, b := near[i], near[j]
		if la, lb := len(versionBase(a)), len(versionBase(b)); la != lb {
			return la < lb
		}
		if oa, ob := strings.HasSuffix(a, "-only"), strings.HasSuffix(b, "-only"); oa != ob {
			return oa
		}
		return a < b
	})
	return detected{id: near[0], conf: matches[near[0]], text: true}, true
}

// versionBase returns id without a "-only" or "-or-later" ending.
func versionBase(id string) string {
	if s, ok := strings.CutSuffix(id, "-only"); ok {
		return s
	}
	s, _ := strings.CutSuffix(id, "-or-later")
	return strings.TrimSuffix(s, "+")
}

// gnuFamily returns "LGPL" or "GPL" and the major version of a GNU license id, or "".
func gnuFamily(id string) (family string, major byte) {
	for _, f := range []string{"LGPL-", "GPL-"} {
		if strings.HasPrefix(id, f) && len(id) > len(f) {
			return f[:len(f)-1], id[len(f)]
		}
	}
	return "", 0
}

// combineLicenses joins the licenses found in one directory's license files into one
// expression. Same licenses count once. A GPL text beside an LGPL of the same major
// version is dropped: LGPL projects ship the GPL text that the LGPL builds on (glibc's
// COPYING and COPYING.LIB). A full text that only gave the version of a license that a
// notice states more precisely gives way to the notice. The rest join with AND: every
// one applies, so the strictest decides.
func combineLicenses(found []detected) (expr string, conf float32, files []string) {
	byID := make(map[string]detected)
	for _, d := range found {
		if old, ok := byID[d.id]; !ok || d.conf > old.conf {
			byID[d.id] = d
		}
	}
	lgpl := make(map[byte]bool)
	for id := range byID {
		if f, major := gnuFamily(id); f == "LGPL" {
			lgpl[major] = true
		}
	}
	var ids []string
	for id, d := range byID {
		if f, major := gnuFamily(id); f == "GPL" && lgpl[major] {
			continue
		}
		if d.text && precised(id, byID) {
			continue
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return "", 0, nil
	}
	sort.Strings(ids)
	conf = 1
	seen := make(map[string]bool)
	parts := make([]string, len(ids))
	for i, id := range ids {
		d := byID[id]
		conf = min(conf, d.conf)
		if !seen[d.file] {
			seen[d.file] = true
			files = append(files, d.file)
		}
		parts[i] = id
		if len(ids) > 1 && strings.Contains(strings.ToUpper(id), " OR ") {
			parts[i] = "(" + id + ")"
		}
	}
	sort.Strings(files)
	return strings.Join(parts, " AND "), conf, files
}

// precised reports whether another license in byID has the same base as id but came
// from a notice, which says "-only" or "-or-later" where a text cannot.
func precised(id string, byID map[string]detected) bool {
	base := versionBase(id)
	for other, d := range byID {
		if other != id && !d.text && versionBase(strings.Fields(other)[0]) == base {
			return true
		}
	}
	return false
}
