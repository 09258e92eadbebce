package proxy

import (
	"math"
	"strings"

	"cleanroom/corpus/license"
	"cleanroom/index"
)

// A citation names the source of a match, for the client.
type citation struct {
	License   string `json:"license"` // canonical SPDX expression
	Repo      string `json:"repo"`
	Path      string `json:"path"`
	StartLine int    `json:"start_line"`
	EndLine   int    `json:"end_line"`
	Tokens    int    `json:"tokens"`
	// Share is the part of the choice's output (this text of it) that the match
	// covers: how sure the match is, beside its length.
	Share   float64 `json:"share"`
	URL     string  `json:"url,omitempty"`
	Version string  `json:"version,omitempty"`
	Action  string  `json:"action"`
	// LicenseAsFound is the license expression as the source states it, when that
	// is not canonical ("GPL-2.0+" for GPL-2.0-or-later).
	LicenseAsFound string `json:"license_as_found,omitempty"`

	action Action
	// text is the text of the choice the match is in; start and end are the bytes
	// of the match in that text as the detector read it.
	text       *text
	start, end int
}

func newCitation(m *index.Match, outputTokens int, a Action) citation {
	share := float64(m.Tokens) / float64(max(outputTokens, 1))
	return citation{License: m.Source.License, LicenseAsFound: m.Source.LicenseAsFound, Repo: m.Source.Repo.Name, Path: m.Source.Path,
		StartLine: m.Src.StartLine, EndLine: m.Src.EndLine, Tokens: m.Tokens, Share: math.Round(min(share, 1)*1000) / 1000,
		URL: m.URL(), Version: m.Source.Repo.Version, Action: a.String(), action: a}
}

func (c citation) rank() int { return int(c.action)<<40 + c.Tokens }

// shown returns the citations a client sees: all but the allowed ones.
func shown(cs []citation) []citation {
	var out []citation
	for _, c := range cs {
		if c.action != Allow {
			out = append(out, c)
		}
	}
	return out
}

// annotate adds the citation fields to a choice object of a response or chunk:
// Azure OpenAI's content_filter_results.protected_material_code, which clients of
// Azure already read, with the first citation, and copyleft_matches with all of them.
func annotate(ch map[string]any, cs []citation, filtered bool) {
	cs = shown(cs)
	if len(cs) == 0 {
		return
	}
	cfr, _ := ch["content_filter_results"].(map[string]any)
	if cfr == nil {
		cfr = map[string]any{}
	}
	pm := map[string]any{"filtered": filtered, "detected": true, "citation": map[string]any{"URL": cs[0].URL, "license": cs[0].License}}
	cfr["protected_material_code"] = pm
	ch["content_filter_results"] = cfr
	ch["copyleft_matches"] = cs
}

// licenseLabel bounds a license expression for use as a metric label: its canonical
// form (license.Canonical), so that GPL-2.0, GPL-2.0-only and (GPL-2.0) are one
// series; "unknown" for none, "other" for an expression that does not parse or is
// longer than 64 bytes.
func licenseLabel(expr string) string {
	if strings.TrimSpace(expr) == "" {
		return "unknown"
	}
	c, err := license.Canonical(expr)
	if err != nil || len(c) > 64 {
		return "other"
	}
	return c
}
