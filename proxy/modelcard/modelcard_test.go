package modelcard_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom/proxy/modelcard"
	"cleanroom/proxy/modelcard/cardtest"
)

type model struct{ id, commit, fm string }

var (
	mistral        = model{"mistralai/Mistral-7B-v0.1", cardtest.C1, cardtest.Mistral}
	llama3         = model{"meta-llama/Meta-Llama-3-8B", cardtest.C1, cardtest.Llama3}
	llama3FT       = model{"acme/Llama-3-8B-code", cardtest.C1, cardtest.Llama3FineTune}
	ayaNC          = model{"CohereForAI/aya-23-8B", cardtest.C1, cardtest.AyaNC}
	llama1         = model{"huggyllama/llama-7b", cardtest.C1, cardtest.Llama1}
	llama1FT       = model{"acme/vicuna-7b", cardtest.C1, cardtest.Llama1FineTune}
	books3         = model{"acme/books-7b", cardtest.C1, cardtest.Books3}
	llama3FTApache = model{"acme/Llama-3-8B-code", cardtest.C1, strings.Replace(cardtest.Llama3FineTune, "license: llama3\n", "license: apache-2.0\n", 1)}
	relicensed     = model{"acme/Llama-3-8B-code", cardtest.C2, strings.Replace(cardtest.Llama3FineTune, "license: llama3\n", "license: llama3.1\n", 1)}
)

func defaultRules() modelcard.Rules {
	return modelcard.Rules{Block: []modelcard.Class{modelcard.NonCommercial, modelcard.ResearchOnly}, OnChange: "refuse",
		Datasets: modelcard.DefaultDatasets(), OnDatasetFlag: "review"}
}

// TestDecisions writes model directories shaped like real ones and checks each
// decision, its reasons and conditions, the lineage and the dataset flags.
func TestDecisions(t *testing.T) {
	reviewed := func(tag string) *modelcard.Review {
		return &modelcard.Review{Entry: "x", License: "LicenseRef-x", Class: modelcard.Restricted, CardLicense: tag,
			Commit: cardtest.C1, Reviewed: "2026-10-01", Reviewer: "jane@example.com"}
	}
	rules := defaultRules()
	flagRules, rejectRules, allowRules, requireRules := defaultRules(), defaultRules(), defaultRules(), defaultRules()
	flagRules.OnChange = "flag"
	rejectRules.OnDatasetFlag = "reject"
	allowRules.Datasets.Allow = append(allowRules.Datasets.Allow, "the_pile_books3")
	requireRules.RequireReview = true
	for _, tt := range []struct {
		name       string
		models     []model // the first is judged
		review     *modelcard.Review
		rules      modelcard.Rules
		want       modelcard.Decision
		class      modelcard.Class
		reasons    []string // each in some reason
		conditions []string // each in some condition
		lineage    int
		flags      []string // datasets flagged
		changes    []string // what changed
	}{
		{name: "apache-2.0", models: []model{mistral}, rules: rules, want: modelcard.Approved, class: modelcard.Open,
			reasons: []string{"its license, apache-2.0, is open (no review in the policy)"}, lineage: 1},
		{name: "apache-2.0 unreviewed, review required", models: []model{mistral}, rules: requireRules,
			want: modelcard.NeedsReview, class: modelcard.Open, reasons: []string{"has no entry for it"}, lineage: 1},
		{name: "apache-2.0 reviewed", models: []model{mistral},
			review: &modelcard.Review{Entry: "mistral-7b", License: "Apache-2.0", Class: modelcard.Open, Commit: cardtest.C1[:7],
				Reviewed: "2026-10-01", Reviewer: "jane@example.com"},
			rules: requireRules, want: modelcard.Approved, class: modelcard.Open,
			reasons: []string{"is open, as reviewed on 2026-10-01 by jane@example.com"}, lineage: 1},
		{name: "llama3 community license", models: []model{llama3}, rules: rules, want: modelcard.Conditions,
			class: modelcard.Restricted, lineage: 1,
			conditions: []string{"above 700,000,000 monthly active users", "acceptable-use policy: Meta's (https://llama.meta.com/use-policy)",
				"outputs may not be used to train", `"Built with Meta Llama 3"`}},
		{name: "llama3 fine-tune with its base", models: []model{llama3FT, llama3}, rules: rules,
			want: modelcard.Conditions, class: modelcard.Restricted, lineage: 2,
			conditions: []string{"above 700,000,000 monthly active users"}},
		{name: "fine-tune claiming apache-2.0 inherits its llama3 base's conditions", models: []model{llama3FTApache, llama3}, rules: rules,
			want: modelcard.Conditions, class: modelcard.Restricted, lineage: 2,
			reasons:    []string{"whose license, llama3, is restricted: a derivative inherits its base's terms, so acme/Llama-3-8B-code is restricted whatever its own card says (apache-2.0)"},
			conditions: []string{"700,000,000 monthly active users (from meta-llama/Meta-Llama-3-8B)"}},
		{name: "llama3 fine-tune, base not at hand", models: []model{llama3FT}, rules: rules,
			want: modelcard.NeedsReview, class: modelcard.Unknown, lineage: 2,
			reasons: []string{"a fine-tune of meta-llama/Meta-Llama-3-8B, which is not at hand", "license class is unknown"}},
		{name: "base not at hand, settled by a review of this card", models: []model{llama3FT}, review: reviewed("llama3"),
			rules: rules, want: modelcard.Conditions, class: modelcard.Restricted, lineage: 2,
			reasons: []string{"recorded this card's license (llama3) and classed it restricted"}},
		{name: "cc-by-nc-4.0", models: []model{ayaNC}, rules: rules, want: modelcard.Rejected, class: modelcard.NonCommercial,
			reasons: []string{"effective license class is non-commercial, and the policy blocks non-commercial models"}, lineage: 1},
		{name: "apache-2.0 fine-tune of research-only weights", models: []model{llama1FT, llama1}, rules: rules,
			want: modelcard.Rejected, class: modelcard.ResearchOnly, lineage: 2,
			reasons: []string{"acme/vicuna-7b is a derivative of huggyllama/llama-7b, whose license, llama-license, is research-only: " +
				"a derivative inherits its base's terms, so acme/vicuna-7b is research-only whatever its own card says (apache-2.0)",
				"the policy blocks research-only models"}},
		{name: "research-only base reviewed as open is still rejected", models: []model{llama1FT, llama1},
			review: &modelcard.Review{Entry: "vicuna", License: "Apache-2.0", Class: modelcard.Open, CardLicense: "apache-2.0"},
			rules:  rules, want: modelcard.Rejected, class: modelcard.ResearchOnly, lineage: 2},
		{name: "books3 in datasets", models: []model{books3}, rules: rules, want: modelcard.NeedsReview, class: modelcard.Open,
			reasons: []string{"training dataset the_pile_books3 (listed by acme/books-7b) is flagged: Books3"}, flags: []string{"the_pile_books3"}, lineage: 1},
		{name: "books3, policy rejects flags", models: []model{books3}, rules: rejectRules, want: modelcard.Rejected,
			class: modelcard.Open, flags: []string{"the_pile_books3"}, lineage: 1},
		{name: "books3 allowed by the policy", models: []model{books3}, rules: allowRules, want: modelcard.Approved,
			class: modelcard.Open, lineage: 1},
		{name: "license changed after review", models: []model{relicensed, llama3}, review: reviewed("llama3"), rules: rules,
			want: modelcard.Rejected, class: modelcard.Restricted, lineage: 2, changes: []string{"license", "commit"},
			reasons: []string{"its model card changed since the license review: license llama3 at the review, llama3.1 now; commit " +
				cardtest.C1 + " at the review, " + cardtest.C2 + " now"}},
		{name: "license changed after review, policy flags", models: []model{relicensed, llama3}, review: reviewed("llama3"),
			rules: flagRules, want: modelcard.NeedsReview, class: modelcard.Restricted, lineage: 2, changes: []string{"license", "commit"}},
		{name: "review without card_license compares the SPDX id", models: []model{mistral},
			review: &modelcard.Review{Entry: "m", License: "MIT", Class: modelcard.Open}, rules: rules, want: modelcard.Rejected,
			class: modelcard.Open, lineage: 1, changes: []string{"license"}, reasons: []string{"license MIT at the review, Apache-2.0 (apache-2.0) now"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			var dirs []string
			for _, m := range tt.models {
				dirs = append(dirs, cardtest.Write(t, root, m.id, m.commit, m.fm))
			}
			set, err := modelcard.Load(dirs...)
			if err != nil {
				t.Fatal(err)
			}
			a := modelcard.Assess(set.Cards[0], set, tt.rules.Datasets)
			rep := modelcard.Judge(a, tt.review, tt.rules)
			if rep.Decision != tt.want || rep.Record.Class != tt.class || len(rep.Lineage) != tt.lineage {
				t.Errorf("decision %q, class %s, lineage of %d; want %q, %s, %d\nreasons: %q", rep.Decision, rep.Record.Class,
					len(rep.Lineage), tt.want, tt.class, tt.lineage, rep.Reasons)
			}
			if rep.Commit != tt.models[0].commit || rep.Model != tt.models[0].id {
				t.Errorf("model %s@%s, want %s@%s", rep.Model, rep.Commit, tt.models[0].id, tt.models[0].commit)
			}
			for _, want := range tt.reasons {
				if !containsIn(rep.Reasons, want) {
					t.Errorf("no reason says %q; got %q", want, rep.Reasons)
				}
			}
			for _, want := range tt.conditions {
				if !containsIn(rep.Conditions, want) {
					t.Errorf("no condition says %q; got %q", want, rep.Conditions)
				}
			}
			var flags, changes []string
			for _, f := range rep.Flags {
				flags = append(flags, f.Dataset)
			}
			for _, c := range rep.Changes {
				changes = append(changes, c.What)
			}
			if strings.Join(flags, ",") != strings.Join(tt.flags, ",") || strings.Join(changes, ",") != strings.Join(tt.changes, ",") {
				t.Errorf("flags %q, changes %q; want %q, %q", flags, changes, tt.flags, tt.changes)
			}
		})
	}
}

func containsIn(list []string, s string) bool {
	for _, l := range list {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// TestLicenseTable checks the class and conditions of the hub's license ids.
func TestLicenseTable(t *testing.T) {
	for _, tt := range []struct {
		license, name string
		class         modelcard.Class
		mau           int64
		noTraining    bool
		why           string // "" for a known license
	}{
		{"apache-2.0", "", modelcard.Open, 0, false, ""},
		{"mit", "", modelcard.Open, 0, false, ""},
		{"llama2", "", modelcard.Restricted, 700_000_000, true, ""},
		{"llama3", "", modelcard.Restricted, 700_000_000, true, ""},
		{"other", "llama3", modelcard.Restricted, 700_000_000, true, ""},
		{"llama3.1", "", modelcard.Restricted, 700_000_000, false, ""},
		{"gemma", "", modelcard.Restricted, 0, false, ""},
		{"cc-by-nc-4.0", "", modelcard.NonCommercial, 0, false, ""},
		{"openrail", "", modelcard.Restricted, 0, false, ""},
		{"bigscience-bloom-rail-1.0", "", modelcard.Restricted, 0, false, ""},
		{"other", "acme-model-license", modelcard.Unknown, 0, false, `"acme-model-license" (license: other), which cleanroom does not classify`},
		{"other", "", modelcard.Unknown, 0, false, `"other" with no license_name`},
		{"", "", modelcard.Unknown, 0, false, "names no license"},
		{"wtf-1.0", "", modelcard.Unknown, 0, false, `"wtf-1.0" is not one cleanroom classifies`},
	} {
		t.Run(tt.license+"/"+tt.name, func(t *testing.T) {
			l, why := modelcard.LookupLicense(&modelcard.Card{License: tt.license, LicenseName: tt.name})
			if l.Class != tt.class || l.MAUThreshold != tt.mau || l.NoTrainingOnOutputs != tt.noTraining ||
				(tt.why == "") != (why == "") || !strings.Contains(why, tt.why) {
				t.Errorf("class %s, threshold %d, no training %v, why %q; want %s, %d, %v, %q", l.Class, l.MAUThreshold,
					l.NoTrainingOnOutputs, why, tt.class, tt.mau, tt.noTraining, tt.why)
			}
		})
	}
}

// TestMalformedCards checks that a card that is not what the hub reads is an
// error naming its file and line.
func TestMalformedCards(t *testing.T) {
	for _, tt := range []struct {
		name, card, want string
	}{
		{"no front matter", "# A model\n", "README.md:1: no YAML front matter"},
		{"unclosed", "---\nlicense: mit\n", "README.md:1: the front matter that begins here has no closing --- line"},
		{"license a list", "---\ntags: [a]\nlicense:\n  - mit\n  - apache-2.0\n---\n", "README.md:4: license: want one value, got a list"},
		{"license upper case", "---\nlicense: Apache-2.0\n---\n", `README.md:2: license: "Apache-2.0" is not a license id`},
		{"yaml syntax", "---\nlicense: mit\ndatasets: [a, b\ntags: x\n---\n", "README.md:"},
		{"base_model a mapping", "---\nlicense: mit\nbase_model:\n  id: x\n---\n", "README.md:4: base_model: want a string or a list of strings"},
		{"relation", "---\nlicense: mit\nbase_model: a/b\nbase_model_relation: distilled\n---\n", `README.md:4: base_model_relation: "distilled": want one of`},
		{"twice", "---\nlicense: mit\nlicense: apache-2.0\n---\n", "README.md:3: license: given twice"},
		{"not a mapping", "---\n- license\n---\n", "README.md:2: the front matter is not a mapping"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(tt.card), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := modelcard.ReadDir(dir)
			var se *modelcard.SyntaxError
			if err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), dir) {
				t.Errorf("error %v, want %s/%s...", err, dir, tt.want)
			}
		})
	}
}

// TestYAMLErrorLine checks that a YAML syntax error names the card's line, not
// the front matter's.
func TestYAMLErrorLine(t *testing.T) {
	_, err := modelcard.Parse("README.md", []byte("---\nlicense: mit\ntags: a\n bad: 2\n---\n"))
	var se *modelcard.SyntaxError
	if !errors.As(err, &se) || se.Line != 4 || err.Error() != "README.md:4: mapping values are not allowed in this context" {
		t.Errorf("error %v: want README.md:4: mapping values are not allowed in this context", err)
	}
}

// TestLayouts reads a hub cache root, a models-- directory with two snapshots, a
// git clone and a plain directory.
func TestLayouts(t *testing.T) {
	root := t.TempDir()
	cache := filepath.Join(root, "hf")
	cardtest.Write(t, filepath.Join(cache, "hub"), mistral.id, cardtest.C1, mistral.fm)
	cardtest.Write(t, filepath.Join(cache, "hub"), llama3.id, cardtest.C2, llama3.fm)
	set, err := modelcard.Load(cache)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range set.Cards {
		got = append(got, c.ID+"@"+c.Commit[:7]+"="+c.LicenseTag())
	}
	if want := "meta-llama/Meta-Llama-3-8B@89abcde=llama3,mistralai/Mistral-7B-v0.1@0123456=apache-2.0"; strings.Join(got, ",") != want {
		t.Errorf("cache root: %s, want %s", strings.Join(got, ","), want)
	}

	// Two snapshots: refs/main says which; without it, an error.
	repo := filepath.Join(root, "two", "models--acme--m")
	cardtest.Write(t, filepath.Join(root, "two"), "acme/m", cardtest.C1, cardtest.Mistral)
	cardtest.Write(t, filepath.Join(root, "two"), "acme/m", cardtest.C2, cardtest.AyaNC)
	if set, err := modelcard.Load(repo); err != nil || set.Cards[0].Commit != cardtest.C2 || set.Cards[0].License != "cc-by-nc-4.0" {
		t.Errorf("refs/main at C2: %v %+v", err, set)
	}
	os.Remove(filepath.Join(repo, "refs", "main"))
	if _, err := modelcard.Load(repo); err == nil || !strings.Contains(err.Error(), "2 snapshots and no refs/main") {
		t.Errorf("two snapshots, no refs/main: %v", err)
	}

	// A git clone: its HEAD's commit; a plain directory: none.
	clone := filepath.Join(root, "Mistral-7B-v0.1")
	os.MkdirAll(filepath.Join(clone, ".git", "refs", "heads"), 0o755)
	os.WriteFile(filepath.Join(clone, "README.md"), []byte("---\n"+cardtest.Mistral+"---\n"), 0o644)
	os.WriteFile(filepath.Join(clone, ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)
	os.WriteFile(filepath.Join(clone, ".git", "refs", "heads", "main"), []byte(cardtest.C2+"\n"), 0o644)
	c, err := modelcard.ReadDir(clone)
	if err != nil || c.ID != "Mistral-7B-v0.1" || c.Commit != cardtest.C2 {
		t.Errorf("git clone: %v %+v", err, c)
	}
	// A plain directory is found as a base by its name.
	set, err = modelcard.Load(clone)
	if err != nil || set.Lookup("mistralai/Mistral-7B-v0.1") == nil || set.Lookup("other/Mistral-7B-v0.1") == nil {
		t.Errorf("lookup of a plain directory by name: %v", err)
	}
	if _, err := modelcard.Load(filepath.Join(root, "two")); err == nil {
		t.Errorf("a directory with two snapshots and no refs/main read without error")
	}
	if _, err := modelcard.Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a model directory") {
		t.Errorf("an empty directory: %v", err)
	}
}

// TestWriteText checks the text report's shape.
func TestWriteText(t *testing.T) {
	root := t.TempDir()
	set, err := modelcard.Load(cardtest.Write(t, root, llama1FT.id, llama1FT.commit, llama1FT.fm),
		cardtest.Write(t, root, llama1.id, llama1.commit, llama1.fm))
	if err != nil {
		t.Fatal(err)
	}
	rep := modelcard.Judge(modelcard.Assess(set.Cards[0], set, modelcard.DefaultDatasets()), nil, defaultRules())
	var b strings.Builder
	modelcard.WriteText(&b, []modelcard.Report{rep})
	for _, want := range []string{"acme/vicuna-7b@" + cardtest.C1 + ": REJECTED\n", "  license:    apache-2.0 (Apache License 2.0)",
		"  class:      research-only\n", "  lineage:    acme/vicuna-7b@0123456789ab (apache-2.0, open)\n              <- base: huggyllama/llama-7b@0123456789ab (llama-license, research-only)\n",
		"  reason:     acme/vicuna-7b is a derivative of huggyllama/llama-7b"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report has no %q:\n%s", want, b.String())
		}
	}
}
