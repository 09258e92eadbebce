package modelcard

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// A Link is one model of a lineage: the model itself (Depth 0) or a base of one.
type Link struct {
	ID       string `json:"id"`
	Commit   string `json:"commit,omitempty"`
	License  string `json:"license,omitempty"` // the card's LicenseTag
	Class    Class  `json:"class"`
	Relation string `json:"relation,omitempty"` // how Of derives from this model: finetune, adapter, merge, quantized ("" if the card does not say)
	Of       string `json:"base_of,omitempty"`  // the model this one is a base of; "" for the model itself
	Depth    int    `json:"depth"`
	AtHand   bool   `json:"at_hand"` // whether its directory was given; a base not at hand is of class unknown

	license *License
}

// An Assessment is what a card and the cards of its lineage say, before any review.
type Assessment struct {
	Card    *Card
	License *License // the card's own license
	Class   Class    // the strictest class along the lineage
	Lineage []Link   // the model, then its bases, depth first
	Flags   []Flag   // flagged datasets of the model and its bases
	Reasons []string // why the class is what it is
}

// Assess reads a card's license and follows its base_model through the cards of
// set: the effective class is the strictest along the chain, and a base not in
// set makes it unknown, never open.
func Assess(c *Card, set *Set, ds DatasetRules) *Assessment {
	a := &Assessment{Card: c}
	own, why := LookupLicense(c)
	a.License, a.Class = own, own.Class
	a.Lineage = append(a.Lineage, Link{ID: c.ID, Commit: c.Commit, License: c.LicenseTag(), Class: own.Class, AtHand: true, license: own})
	if why != "" {
		a.Reasons = append(a.Reasons, why)
	}
	a.Flags = ds.Check(c)
	seen := map[string]bool{c.ID: true}
	var walk func(child *Card, depth int)
	walk = func(child *Card, depth int) {
		for _, b := range child.BaseModels {
			rel := child.BaseModelRelation
			link := Link{ID: b, Relation: rel, Of: child.ID, Depth: depth, Class: Unknown}
			bc := set.Lookup(b)
			if bc == nil {
				a.Lineage = append(a.Lineage, link)
				a.Class = Strictest(a.Class, Unknown)
				a.Reasons = append(a.Reasons, fmt.Sprintf("%s is %s of %s, which is not at hand: a derivative inherits its base's terms, so its license is unknown until %s's directory is checked too",
					child.ID, relationPhrase(rel), b, b))
				continue
			}
			if seen[bc.ID] {
				a.Reasons = append(a.Reasons, fmt.Sprintf("the lineage of %s loops back to %s", c.ID, bc.ID))
				continue
			}
			seen[bc.ID] = true
			l, why := LookupLicense(bc)
			link.ID, link.Commit, link.License, link.Class, link.AtHand, link.license = bc.ID, bc.Commit, bc.LicenseTag(), l.Class, true, l
			a.Lineage = append(a.Lineage, link)
			if why != "" {
				a.Reasons = append(a.Reasons, bc.ID+": "+why)
			}
			if slices.Index(Classes, l.Class) > slices.Index(Classes, own.Class) {
				a.Reasons = append(a.Reasons, fmt.Sprintf("%s is %s of %s, whose license, %s, is %s: a derivative inherits its base's terms, so %s is %s whatever its own card says (%s)",
					child.ID, relationPhrase(rel), bc.ID, orNone(bc.LicenseTag()), l.Class, c.ID, l.Class, orNone(c.LicenseTag())))
			}
			a.Class = Strictest(a.Class, l.Class)
			a.Flags = append(a.Flags, ds.Check(bc)...)
			walk(bc, depth+1)
		}
	}
	walk(c, 1)
	return a
}

func relationPhrase(rel string) string {
	switch rel {
	case "adapter":
		return "an adapter"
	case "merge":
		return "a merge"
	case "quantized":
		return "a quantization"
	case "finetune":
		return "a fine-tune"
	}
	return "a derivative"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// A Review is what a compliance review recorded about a model: the policy's entry.
type Review struct {
	Entry      string // the policy entry's id (or pattern)
	License    string // as the policy records it: an SPDX id or a LicenseRef-
	LicenseURL string
	Class      Class
	// CardLicense is the card's LicenseTag the review read, and Commit the
	// snapshot commit it read it at; "" when the review did not record them.
	CardLicense           string
	Commit                string
	CommercialUse         *bool
	MAUThreshold          int64
	OutputsMayTrainModels *bool
	AcceptableUseURL      string
	Reviewed, Reviewer    string
	Notes                 string
}

// A Change is how a card differs from what its review recorded.
type Change struct {
	What     string `json:"what"` // license or commit
	Reviewed string `json:"reviewed"`
	Now      string `json:"now"`
}

func (c Change) String() string {
	return fmt.Sprintf("%s %s at the review, %s now", c.What, c.Reviewed, c.Now)
}

// Compare returns how a card differs from its review: its license (the tag the
// review recorded, or else, where the card's license has an SPDX id, the
// review's license) and its snapshot commit (a prefix of 7 or more hex digits is
// enough).
func Compare(c *Card, r *Review) []Change {
	if r == nil {
		return nil
	}
	var out []Change
	tag := c.LicenseTag()
	if r.CardLicense != "" {
		if !strings.EqualFold(r.CardLicense, tag) {
			out = append(out, Change{"license", strings.ToLower(r.CardLicense), orNone(tag)})
		}
	} else if l, ok := licenses[tag]; ok && r.License != "" && !strings.HasPrefix(l.SPDX, "LicenseRef-") && !strings.EqualFold(l.SPDX, r.License) {
		out = append(out, Change{"license", r.License, l.SPDX + " (" + tag + ")"})
	}
	if r.Commit != "" {
		switch {
		case c.Commit == "":
			out = append(out, Change{"commit", r.Commit, "unknown (the directory is neither a hub cache snapshot nor a git clone)"})
		case !(len(r.Commit) >= 7 && strings.HasPrefix(strings.ToLower(c.Commit), strings.ToLower(r.Commit))):
			out = append(out, Change{"commit", r.Commit, c.Commit})
		}
	}
	return out
}

// ChangeMessage says what changed, for a log line or a refusal.
func ChangeMessage(cs []Change) string {
	var parts []string
	for _, c := range cs {
		parts = append(parts, c.String())
	}
	return "its model card changed since the license review: " + strings.Join(parts, "; ")
}

// Rules are the policy's rules for the gate.
type Rules struct {
	Block         []Class // classes rejected
	RequireReview bool    // a model the policy does not list needs review
	// OnChange is what a card that changed since its review gets: "refuse"
	// (rejected; the default) or "flag" (needs review, and the gateway serves it).
	OnChange string
	Datasets DatasetRules
	// OnDatasetFlag is what a flagged dataset gets: "review" (needs review; the
	// default), "reject", or "condition" (approved with a condition).
	OnDatasetFlag string
}

// A Decision is the gate's answer for a model.
type Decision string

// Decisions, from the best.
const (
	Approved    Decision = "approved"
	Conditions  Decision = "approved with conditions"
	NeedsReview Decision = "needs review"
	Rejected    Decision = "rejected"
)

var decisions = []Decision{Approved, Conditions, NeedsReview, Rejected}

// Passes reports whether a CI gate lets the model through.
func (d Decision) Passes() bool { return d == Approved || d == Conditions }

// A Record is the metadata a team stores beside the model artifact.
type Record struct {
	ID                    string   `json:"id"`
	Commit                string   `json:"commit,omitempty"`
	License               string   `json:"license"` // the card's LicenseTag
	LicenseName           string   `json:"license_name,omitempty"`
	SPDX                  string   `json:"spdx,omitempty"`
	URL                   string   `json:"url,omitempty"`
	Class                 Class    `json:"class"` // the effective class: the strictest along the lineage
	CommercialUse         *bool    `json:"commercial_use"`
	MAUThreshold          int64    `json:"user_threshold,omitempty"`
	DerivativesAllowed    *bool    `json:"derivatives_allowed"`
	OutputsMayTrainModels *bool    `json:"outputs_may_train_models"`
	BaseModels            []string `json:"base_models,omitempty"`
	Datasets              []string `json:"datasets,omitempty"`
	PolicyEntry           string   `json:"policy_entry,omitempty"`
	ReviewedLicense       string   `json:"reviewed_license,omitempty"`
	Reviewed              string   `json:"reviewed,omitempty"`
	Reviewer              string   `json:"reviewer,omitempty"`
	Notes                 string   `json:"notes,omitempty"`
}

// A Report is the gate's answer for one model, with why.
type Report struct {
	Model      string   `json:"model"`
	Dir        string   `json:"dir"`
	Commit     string   `json:"commit,omitempty"`
	Decision   Decision `json:"decision"`
	Reasons    []string `json:"reasons"`
	Conditions []string `json:"conditions,omitempty"`
	Lineage    []Link   `json:"lineage"`
	Flags      []Flag   `json:"flags,omitempty"`
	Changes    []Change `json:"changes,omitempty"`
	Record     Record   `json:"record"`
}

// Judge decides about an assessed model under a review (nil when the policy
// lists none) and the rules.
func Judge(a *Assessment, rev *Review, rules Rules) Report {
	c := a.Card
	rep := Report{Model: c.ID, Dir: c.Dir, Commit: c.Commit, Decision: Approved, Lineage: a.Lineage, Flags: a.Flags,
		Changes: Compare(c, rev)}
	rep.Reasons = append(rep.Reasons, a.Reasons...)
	worse := func(d Decision, reason string) {
		if slices.Index(decisions, d) > slices.Index(decisions, rep.Decision) {
			rep.Decision = d
		}
		if reason != "" {
			rep.Reasons = append(rep.Reasons, reason)
		}
	}
	// An unknown class (a license cleanroom does not classify, a base not at
	// hand) is settled by a review that recorded this very card.
	class := a.Class
	switch {
	case rev == nil:
	case class == Unknown && rev.CardLicense != "" && rev.Class != Unknown && len(rep.Changes) == 0:
		class = rev.Class
		rep.Reasons = append(rep.Reasons, fmt.Sprintf("the review%s recorded this card's license (%s) and classed it %s", reviewWhen(rev), rev.CardLicense, rev.Class))
	case slices.Index(Classes, rev.Class) > slices.Index(Classes, class) && rev.Class != Unknown:
		rep.Reasons = append(rep.Reasons, fmt.Sprintf("the review%s classed it %s, stricter than its card (%s)", reviewWhen(rev), rev.Class, class))
		class = rev.Class
	}

	if len(rep.Changes) > 0 {
		d := Rejected
		if rules.OnChange == "flag" {
			d = NeedsReview
		}
		worse(d, ChangeMessage(rep.Changes))
	}
	switch {
	case slices.Contains(rules.Block, class):
		worse(Rejected, fmt.Sprintf("its effective license class is %s, and the policy blocks %s models", class, class))
	case class == Unknown:
		worse(NeedsReview, "its license class is unknown: a reviewer must read the license and record the review in the policy (card_license, commit, class)")
	}
	if rev == nil && rules.RequireReview {
		worse(NeedsReview, "the policy's models list has no entry for it, and the policy requires a reviewed license for every model")
	}
	for _, f := range a.Flags {
		reason := fmt.Sprintf("training dataset %s (listed by %s) is flagged: %s", f.Dataset, f.Model, f.Reason)
		switch rules.OnDatasetFlag {
		case "reject":
			worse(Rejected, reason)
		case "condition":
			worse(Conditions, "")
			rep.Conditions = append(rep.Conditions, reason)
		default:
			worse(NeedsReview, reason)
		}
	}

	// The conditions of every license along the lineage flow down.
	rec := Record{ID: c.ID, Commit: c.Commit, License: c.LicenseTag(), LicenseName: a.License.Name, SPDX: a.License.SPDX,
		URL: a.License.URL, Class: class, CommercialUse: class.Commercial(), BaseModels: c.BaseModels, Datasets: c.Datasets}
	derivatives, training := class != ResearchOnly && class != Unknown, class != Unknown
	seen := map[string]bool{}
	for _, l := range a.Lineage {
		if l.license == nil {
			continue
		}
		for _, cond := range l.license.Conditions() {
			if seen[cond] {
				continue // the same terms as a model nearer the top
			}
			seen[cond] = true
			if l.Depth > 0 {
				cond += " (from " + l.ID + ")"
			}
			rep.Conditions = append(rep.Conditions, cond)
		}
		rec.MAUThreshold = minPositive(rec.MAUThreshold, l.license.MAUThreshold)
		derivatives = derivatives && !l.license.NoDerivatives
		training = training && !l.license.NoTrainingOnOutputs
	}
	rec.DerivativesAllowed, rec.OutputsMayTrainModels = &derivatives, &training
	if rev != nil {
		rec.PolicyEntry, rec.ReviewedLicense, rec.Reviewed, rec.Reviewer, rec.Notes = rev.Entry, rev.License, rev.Reviewed, rev.Reviewer, rev.Notes
		if rev.CommercialUse != nil && !*rev.CommercialUse {
			rec.CommercialUse = rev.CommercialUse
		}
		rec.MAUThreshold = minPositive(rec.MAUThreshold, rev.MAUThreshold)
		if rev.OutputsMayTrainModels != nil && !*rev.OutputsMayTrainModels {
			rec.OutputsMayTrainModels = rev.OutputsMayTrainModels
		}
		if rev.AcceptableUseURL != "" {
			cond := "acceptable-use policy: " + rev.AcceptableUseURL
			if !slices.Contains(rep.Conditions, cond) {
				rep.Conditions = append(rep.Conditions, cond)
			}
		}
		if rev.Notes != "" {
			rep.Conditions = append(rep.Conditions, "review notes: "+rev.Notes)
		}
	}
	rep.Record = rec
	if class == Restricted && len(rep.Conditions) == 0 {
		rep.Conditions = append(rep.Conditions, "a restricted license: commercial use under its terms")
	}
	if len(rep.Conditions) > 0 {
		worse(Conditions, "")
	}
	if rep.Decision.Passes() {
		why := fmt.Sprintf("its license, %s, is %s", orNone(c.LicenseTag()), class)
		if len(a.Lineage) > 1 {
			why += " along its lineage"
		}
		if rev != nil {
			why += ", as reviewed" + reviewWhen(rev)
		} else {
			why += " (no review in the policy)"
		}
		rep.Reasons = append(rep.Reasons, why)
	}
	if rep.Reasons == nil {
		rep.Reasons = []string{}
	}
	return rep
}

func minPositive(a, b int64) int64 {
	if a == 0 || (b > 0 && b < a) {
		return b
	}
	return a
}

func reviewWhen(r *Review) string {
	s := ""
	if r.Reviewed != "" {
		s += " on " + r.Reviewed
	}
	if r.Reviewer != "" {
		s += " by " + r.Reviewer
	}
	return s
}

// Exit is a CI gate's exit status for reports: 0 when every model passes, 1 when
// one is rejected or needs review.
func Exit(reps []Report) int {
	for _, r := range reps {
		if !r.Decision.Passes() {
			return 1
		}
	}
	return 0
}

// WriteJSON writes reports as one JSON object: {"models": [...]}.
func WriteJSON(w io.Writer, reps []Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if reps == nil {
		reps = []Report{}
	}
	return enc.Encode(struct {
		Models []Report `json:"models"`
	}{reps})
}

// WriteText writes reports for people: per model its decision, license, lineage,
// flags, changes, reasons and conditions.
func WriteText(w io.Writer, reps []Report) error {
	var b strings.Builder
	for i, r := range reps {
		if i > 0 {
			b.WriteString("\n")
		}
		commit := r.Commit
		if commit == "" {
			commit = "(no commit)"
		}
		fmt.Fprintf(&b, "%s@%s: %s\n", r.Model, commit, strings.ToUpper(string(r.Decision)))
		rec := r.Record
		fmt.Fprintf(&b, "  dir:        %s\n", r.Dir)
		lic := rec.License
		if rec.LicenseName != "" {
			lic += " (" + rec.LicenseName + ")"
		}
		if rec.URL != "" {
			lic += " " + rec.URL
		}
		fmt.Fprintf(&b, "  license:    %s\n", orNone(lic))
		fmt.Fprintf(&b, "  class:      %s\n", rec.Class)
		if len(r.Lineage) > 1 {
			var parts []string
			for _, l := range r.Lineage {
				s := l.ID
				if l.Commit != "" {
					s += "@" + shortCommit(l.Commit)
				}
				if !l.AtHand {
					s += " [not at hand]"
				}
				if l.AtHand {
					s += fmt.Sprintf(" (%s, %s)", orNone(l.License), l.Class)
				} else {
					s += " (" + string(l.Class) + ")"
				}
				if l.Depth > 0 {
					rel := "base"
					if l.Relation != "" {
						rel += " (" + l.Relation + ")"
					}
					s = strings.Repeat("  ", l.Depth-1) + "<- " + rel + ": " + s
				}
				parts = append(parts, s)
			}
			fmt.Fprintf(&b, "  lineage:    %s\n", strings.Join(parts, "\n              "))
		}
		for _, f := range r.Flags {
			fmt.Fprintf(&b, "  flag:       %s (%s): %s\n", f.Dataset, f.Model, f.Reason)
		}
		for _, c := range r.Changes {
			fmt.Fprintf(&b, "  changed:    %s\n", c)
		}
		for _, s := range r.Reasons {
			fmt.Fprintf(&b, "  reason:     %s\n", s)
		}
		for _, s := range r.Conditions {
			fmt.Fprintf(&b, "  condition:  %s\n", s)
		}
		if rec.Reviewed != "" || rec.Reviewer != "" || rec.PolicyEntry != "" {
			fmt.Fprintf(&b, "  reviewed:   %s by %s (policy entry %s, license %s)\n", orNone(rec.Reviewed), orNone(rec.Reviewer), rec.PolicyEntry, rec.ReviewedLicense)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}
