package sdk_test

import (
	"strings"
	"testing"
)

// A request is what a test has a client send.
type request struct {
	endpoint string // "chat" (chat.completions) or "completions" (legacy)
	stream   bool
	n        int
	prompt   string
}

// received is what a client made of the proxy's answer: each choice reassembled,
// in the JSON the Node scripts print.
type received struct {
	Chunks  int      `json:"chunks"` // chunks (or whole responses) read
	Choices []choice `json:"choices"`
}

// A choice is one choice as a client saw it.
type choice struct {
	Index        int    `json:"index"`
	Content      string `json:"content"` // the deltas (or message) put together
	FinishReason string `json:"finish_reason"`
	Finishes     int    `json:"finishes"` // choice objects that carried a finish_reason
	// The citation fields the proxy adds to a choice object, as last seen.
	ContentFilterResults *contentFilterResults `json:"content_filter_results"`
	CopyleftMatches      []copyleftMatch       `json:"copyleft_matches"`
}

type contentFilterResults struct {
	ProtectedMaterialCode *struct {
		Filtered bool `json:"filtered"`
		Detected bool `json:"detected"`
		Citation struct {
			URL     string `json:"URL"`
			License string `json:"license"`
		} `json:"citation"`
	} `json:"protected_material_code"`
}

type copyleftMatch struct {
	License   string  `json:"license"`
	Repo      string  `json:"repo"`
	Path      string  `json:"path"`
	StartLine int     `json:"start_line"`
	EndLine   int     `json:"end_line"`
	Tokens    int     `json:"tokens"`
	Share     float64 `json:"share"`
	URL       string  `json:"url"`
	Version   string  `json:"version"`
	Action    string  `json:"action"`
}

// A reply is what the upstream answers for one choice: Text, and the source it
// copies, if it does.
type reply struct {
	text          string
	path, license string // "" for original text
}

// preamble starts every answer upstream.Markdown makes: text a blocked choice
// still gets.
const preamble = "Here is an implementation:"

// checkChoices checks what a client received against what the upstream sent, the
// proxy serving ci in mode.
func checkChoices(t *testing.T, ci *corpusIndex, mode string, got *received, want []reply) {
	t.Helper()
	if len(got.Choices) != len(want) {
		t.Fatalf("got %d choices, want %d: %+v", len(got.Choices), len(want), got.Choices)
	}
	for i, w := range want {
		c := got.Choices[i]
		if c.Index != i {
			t.Errorf("choice %d has index %d", i, c.Index)
		}
		if c.Finishes != 1 {
			t.Errorf("choice %d: finish_reason sent %d times, want once", i, c.Finishes)
		}
		switch {
		case w.path == "":
			checkClean(t, c, w)
		case mode == "block":
			checkBlocked(t, ci, c, w)
		default:
			checkAnnotated(t, c, w)
		}
	}
}

func checkClean(t *testing.T, c choice, w reply) {
	t.Helper()
	if c.FinishReason != "stop" {
		t.Errorf("clean choice %d: finish_reason %q, want stop", c.Index, c.FinishReason)
	}
	if c.Content != w.text {
		t.Errorf("clean choice %d changed:\n got %q\nwant %q", c.Index, c.Content, w.text)
	}
	if c.ContentFilterResults != nil || c.CopyleftMatches != nil {
		t.Errorf("clean choice %d carries a citation: %+v %+v", c.Index, c.ContentFilterResults, c.CopyleftMatches)
	}
}

func checkBlocked(t *testing.T, ci *corpusIndex, c choice, w reply) {
	t.Helper()
	if c.FinishReason != "content_filter" {
		t.Errorf("blocked choice %d: finish_reason %q, want content_filter", c.Index, c.FinishReason)
	}
	if thr, run := ci.threshold(), ci.longestRun(c.Content); run >= thr {
		t.Errorf("blocked choice %d: the client received a run of %d tokens of indexed code (threshold %d):\n%s",
			c.Index, run, thr, c.Content)
	}
	if !strings.HasPrefix(w.text, c.Content) || !strings.HasPrefix(c.Content, preamble) {
		t.Errorf("blocked choice %d: got %q, want a prefix of the upstream's text that keeps %q", c.Index, c.Content, preamble)
	}
	checkCitation(t, ci, c, w, true)
}

func checkAnnotated(t *testing.T, c choice, w reply) {
	t.Helper()
	if c.FinishReason != "stop" {
		t.Errorf("annotated choice %d: finish_reason %q, want stop", c.Index, c.FinishReason)
	}
	if c.Content != w.text {
		t.Errorf("annotated choice %d changed:\n got %q\nwant %q", c.Index, c.Content, w.text)
	}
	checkCitation(t, nil, c, w, false)
}

// checkCitation checks the citation fields of a choice that copies w.path. With
// ci, the matches must be at least its threshold long.
func checkCitation(t *testing.T, ci *corpusIndex, c choice, w reply, filtered bool) {
	t.Helper()
	if c.ContentFilterResults == nil || c.ContentFilterResults.ProtectedMaterialCode == nil {
		t.Errorf("choice %d: no content_filter_results.protected_material_code", c.Index)
	} else {
		pm := c.ContentFilterResults.ProtectedMaterialCode
		if pm.Filtered != filtered || !pm.Detected || pm.Citation.License != w.license || !strings.Contains(pm.Citation.URL, w.path) {
			t.Errorf("choice %d: protected_material_code = %+v, want filtered %v, detected, license %s, a URL naming %s",
				c.Index, *pm, filtered, w.license, w.path)
		}
	}
	if len(c.CopyleftMatches) == 0 {
		t.Errorf("choice %d: no copyleft_matches", c.Index)
		return
	}
	m := c.CopyleftMatches[0]
	action := map[bool]string{true: "block", false: "annotate"}[filtered]
	if m.Path != w.path || m.License != w.license || m.Action != action || m.Repo == "" ||
		m.StartLine < 1 || m.EndLine < m.StartLine || !strings.Contains(m.URL, w.path) {
		t.Errorf("choice %d: copyleft_matches[0] = %+v, want path %s, license %s, action %s",
			c.Index, m, w.path, w.license, action)
	}
	if ci != nil && m.Tokens < ci.threshold() {
		t.Errorf("choice %d: copyleft_matches[0] is %d tokens, shorter than the threshold %d", c.Index, m.Tokens, ci.threshold())
	}
}
