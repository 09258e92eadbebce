package proxy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"cleanroom/proxy/modelcard"
)

// The model cards: with --model-dir the proxy reads the cards of the models it
// serves (package modelcard), at start and on every reload, and compares each
// with what its review recorded in the policy (card_license, commit). A card that
// changed since is refused, or with on_card_change: flag only flagged; both show
// in cleanroom_model_card_mismatch and /v1/models. `proxy models check` is the
// same reading as a CI gate.

var commitPrefix = regexp.MustCompile(`^[0-9a-fA-F]{7,40}$`)

// parseDatasets reads the models section's datasets:
//
//	datasets:
//	  flag:                      # added to the built-in list, and tried first
//	    - id: acme/scraped-*
//	      reason: scraped without licenses
//	  allow: [EleutherAI/pile]   # datasets a review cleared: never flagged
//	  defaults: true             # false drops the built-in list
//	  on_flag: review            # review (the default), reject or condition
func (mp *ModelPolicy) parseDatasets(node *yaml.Node) error {
	if err := checkKeys(node, "models.datasets", datasetKeys); err != nil {
		return err
	}
	var sec struct {
		Flag     []yaml.Node `yaml:"flag"`
		Allow    []string    `yaml:"allow"`
		Defaults *bool       `yaml:"defaults"`
		OnFlag   string      `yaml:"on_flag"`
	}
	if err := node.Decode(&sec); err != nil {
		return fmt.Errorf("models.datasets: %w", err)
	}
	var rules []modelcard.DatasetRule
	for i := range sec.Flag {
		n := &sec.Flag[i]
		where := fmt.Sprintf("models.datasets.flag: entry %d (line %d)", i+1, n.Line)
		if err := checkKeys(n, where, []string{"id", "reason"}); err != nil {
			return err
		}
		var r modelcard.DatasetRule
		if err := n.Decode(&r); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if r.Pattern == "" || r.Reason == "" {
			return fmt.Errorf("%s: want an id (a dataset id or pattern) and a reason", where)
		}
		rules = append(rules, r)
	}
	if sec.Defaults == nil || *sec.Defaults {
		rules = append(rules, mp.Datasets.Flag...)
		mp.Datasets.Allow = append(mp.Datasets.Allow, sec.Allow...)
	} else {
		mp.Datasets.Allow = sec.Allow
	}
	mp.Datasets.Flag = rules
	switch sec.OnFlag {
	case "":
	case "review", "reject", "condition":
		mp.OnDatasetFlag = sec.OnFlag
	default:
		return fmt.Errorf("models.datasets.on_flag: %q: want review, reject or condition", sec.OnFlag)
	}
	return nil
}

// rules are the gate's rules of the policy; a nil policy has the defaults.
func (mp *ModelPolicy) rules() modelcard.Rules {
	if mp == nil {
		return modelcard.Rules{Block: []ModelClass{ModelNonCommercial, ModelResearchOnly}, OnChange: "refuse",
			Datasets: modelcard.DefaultDatasets(), OnDatasetFlag: "review"}
	}
	return modelcard.Rules{Block: mp.Block, RequireReview: mp.RequireKnown, OnChange: mp.OnCardChange,
		Datasets: mp.Datasets, OnDatasetFlag: mp.OnDatasetFlag}
}

// review is what an entry recorded, for package modelcard.
func (m *ModelLicense) review() *modelcard.Review {
	if m == nil {
		return nil
	}
	return &modelcard.Review{Entry: m.ID, License: m.License, LicenseURL: m.LicenseURL, Class: m.Class,
		CardLicense: m.CardLicense, Commit: m.Commit, CommercialUse: m.CommercialUse, MAUThreshold: m.MAUThreshold,
		OutputsMayTrainModels: m.OutputsMayTrainModels, AcceptableUseURL: m.AcceptableUseURL,
		Reviewed: m.Reviewed, Reviewer: m.Reviewer, Notes: m.Notes}
}

// entryForCard returns the policy's entry for a card: the one whose card: names
// it, else the entry of its id, else of its name (the id without ORG/), as a
// server such as vLLM may serve it.
func (mp *ModelPolicy) entryForCard(c *modelcard.Card) *ModelLicense {
	if mp == nil {
		return nil
	}
	for _, m := range mp.list {
		if m.Card != "" && strings.EqualFold(m.Card, c.ID) {
			return m
		}
	}
	if m := mp.Lookup(c.ID); m != nil && m.Card == "" {
		return m
	}
	if i := strings.LastIndexByte(c.ID, '/'); i >= 0 {
		if m := mp.Lookup(c.ID[i+1:]); m != nil && m.Card == "" {
			return m
		}
	}
	return nil
}

// CheckCards judges the models of set under the policy, as `proxy models check`
// does: each model's decision, reasons, lineage, dataset flags and changes since
// its review, in set's order. A nil policy has the default rules and no reviews.
func (mp *ModelPolicy) CheckCards(set *modelcard.Set) []modelcard.Report {
	rules := mp.rules()
	var out []modelcard.Report
	for _, c := range set.Cards {
		a := modelcard.Assess(c, set, rules.Datasets)
		out = append(out, modelcard.Judge(a, mp.entryForCard(c).review(), rules))
	}
	return out
}

// A cardStatus is one card read with --model-dir, against its review.
type cardStatus struct {
	card    *modelcard.Card
	entry   *ModelLicense // nil when the policy has no entry for it
	license *modelcard.License
	changes []modelcard.Change
}

// cardState is the cards read at the last (re)load.
type cardState struct {
	set    *modelcard.Set
	byCard map[string]*cardStatus // by card id
}

// readCards reads the cards of dirs and compares each with its review.
func (mp *ModelPolicy) readCards(dirs []string) (*cardState, error) {
	set, err := modelcard.Load(dirs...)
	if err != nil {
		return nil, err
	}
	cs := &cardState{set: set, byCard: map[string]*cardStatus{}}
	for _, c := range set.Cards {
		l, _ := modelcard.LookupLicense(c)
		st := &cardStatus{card: c, entry: mp.entryForCard(c), license: l}
		st.changes = modelcard.Compare(c, st.entry.review())
		cs.byCard[c.ID] = st
	}
	return cs, nil
}

// cardFor returns the card status of a request for model under entry m: the card
// that m's card: names, or else the card of the model's id, if --model-dir has
// it and it belongs to m.
func (mp *ModelPolicy) cardFor(m *ModelLicense, model string) *cardStatus {
	if mp == nil || m == nil {
		return nil
	}
	cs := mp.cards.Load()
	if cs == nil {
		return nil
	}
	id := m.Card
	if id == "" {
		id = model
	}
	c := cs.set.Lookup(id)
	if c == nil {
		return nil
	}
	if st := cs.byCard[c.ID]; st != nil && st.entry == m {
		return st
	}
	return nil
}

// cardInfo is the card object of a model's license object in GET /v1/models.
type cardInfo struct {
	ID              string             `json:"id"`
	Commit          string             `json:"commit,omitempty"`
	License         string             `json:"license"` // the card's license id (license_name for other)
	LicenseName     string             `json:"license_name,omitempty"`
	LicenseLink     string             `json:"license_link,omitempty"`
	Class           string             `json:"class"` // of the card's own license
	ReviewedLicense string             `json:"reviewed_license,omitempty"`
	ReviewedCommit  string             `json:"reviewed_commit,omitempty"`
	Matches         bool               `json:"matches_review"`
	Changes         []modelcard.Change `json:"changes,omitempty"`
}

func (st *cardStatus) info() *cardInfo {
	ci := &cardInfo{ID: st.card.ID, Commit: st.card.Commit, License: st.card.LicenseTag(), LicenseName: st.license.Name,
		LicenseLink: st.card.LicenseLink, Class: string(st.license.Class), Matches: len(st.changes) == 0, Changes: st.changes}
	if e := st.entry; e != nil {
		ci.ReviewedLicense, ci.ReviewedCommit = e.CardLicense, e.Commit
		if ci.ReviewedLicense == "" {
			ci.ReviewedLicense = e.License
		}
	}
	return ci
}

// loadCards reads the cards of --model-dir, records them for the gate, and sets
// the card metrics; on an error the cards read before stay.
func (s *Server) loadCards() error {
	if len(s.opts.ModelDirs) == 0 {
		return nil
	}
	mp := s.policy.Models
	cs, err := mp.readCards(s.opts.ModelDirs)
	if err != nil {
		s.metrics.cardReads.WithLabelValues("failure").Inc()
		s.log.Error("model cards could not be read; the cards read before stay", "dirs", s.opts.ModelDirs, "err", err)
		return fmt.Errorf("--model-dir: %w", err)
	}
	s.metrics.cardReads.WithLabelValues("success").Inc()
	if mp != nil {
		mp.cards.Store(cs)
	}
	s.metrics.cardInfo.Reset()
	s.metrics.cardMismatch.Reset()
	for _, c := range cs.set.Cards {
		st := cs.byCard[c.ID]
		model, reviewed := unlisted, ""
		if st.entry != nil {
			model, reviewed = st.entry.ID, st.entry.License
			if st.entry.CardLicense != "" {
				reviewed = st.entry.CardLicense
			}
		}
		s.metrics.cardInfo.WithLabelValues(model, c.ID, c.LicenseTag(), reviewed, c.Commit).Set(1)
		if st.entry == nil {
			continue
		}
		for _, what := range []string{"license", "commit"} {
			v := 0.0
			if slices.ContainsFunc(st.changes, func(ch modelcard.Change) bool { return ch.What == what }) {
				v = 1
			}
			s.metrics.cardMismatch.WithLabelValues(model, c.ID, what).Set(v)
		}
		if len(st.changes) > 0 {
			action := "refused"
			if mp.OnCardChange == "flag" {
				action = "flagged"
			}
			s.log.Warn("model card changed since its license review", "model", model, "card", c.ID, "file", c.File,
				"action", action, "changes", modelcard.ChangeMessage(st.changes))
		}
	}
	s.log.Info("model cards read", "dirs", s.opts.ModelDirs, "models", len(cs.set.Cards))
	return nil
}
