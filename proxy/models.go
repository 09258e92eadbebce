package proxy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"go.yaml.in/yaml/v3"

	"cleanroom/corpus/license"
	"cleanroom/proxy/modelcard"
)

// A ModelClass says what a model's license lets a company do with the model (see
// modelcard.Class).
type ModelClass = modelcard.Class

// Model license classes, from the most open.
const (
	// ModelOpen is an OSI-approved or permissive license: Apache-2.0, MIT, ...
	ModelOpen = modelcard.Open
	// ModelRestricted allows commercial use under conditions: a threshold of
	// monthly active users, an acceptable-use policy, no training of other models.
	ModelRestricted = modelcard.Restricted
	// ModelNonCommercial forbids commercial use (CC-BY-NC-*, ...).
	ModelNonCommercial = modelcard.NonCommercial
	// ModelResearchOnly allows research and evaluation only.
	ModelResearchOnly = modelcard.ResearchOnly
	// ModelUnknown is a license no one has classified.
	ModelUnknown = modelcard.Unknown
)

func parseModelClass(s string) (ModelClass, error) { return modelcard.ParseClass(s) }

// A ModelLicense is what a compliance review found about one model's license: an
// entry of the policy file's models.list.
type ModelLicense struct {
	// ID is the model id as clients send it, matched exactly (case matters, as
	// OpenAI's API has it), or a pattern with '*' ("meta-llama/Llama-3.1-*") for
	// ids that differ only by a suffix. An exact id wins over a pattern, a longer
	// pattern over a shorter one.
	ID string `yaml:"id"`
	// License is an SPDX id or a LicenseRef-: Apache-2.0, CC-BY-NC-4.0,
	// LicenseRef-Llama-3.1-Community.
	License    string `yaml:"license"`
	LicenseURL string `yaml:"license_url"`
	// Class, when the file does not give it, follows from the license: an id with
	// NC or NonCommercial in it, or commercial_use: false, is non-commercial; an
	// SPDX license the indexer classifies (permissive or copyleft) is open; any
	// other is unknown, and a reviewer should say which it is.
	Class                 ModelClass `yaml:"class"`
	CommercialUse         *bool      `yaml:"commercial_use"`
	MAUThreshold          int64      `yaml:"mau_threshold"` // monthly active users above which the license needs another agreement; 0 for none
	OutputsMayTrainModels *bool      `yaml:"outputs_may_train_models"`
	AcceptableUseURL      string     `yaml:"acceptable_use_url"`
	Reviewed              string     `yaml:"reviewed"` // date of the review, YYYY-MM-DD
	Reviewer              string     `yaml:"reviewer"`
	Notes                 string     `yaml:"notes"`
	// What the review read on the model card (see ModelPolicy's card checks):
	// Card is the card's model id (ORG/NAME) when it differs from ID, CardLicense
	// the card's license as read (its license id, or for license: other its
	// license_name), Commit the snapshot commit reviewed.
	Card        string `yaml:"card"`
	CardLicense string `yaml:"card_license"`
	Commit      string `yaml:"commit"`
}

// A ModelPolicy is the policy file's models section: the upstream's models with
// their licenses, and which license classes the gateway refuses.
//
//	models:
//	  require_known_model_license: true   # refuse models not listed, or of class unknown
//	  block_classes: [non-commercial, research-only]   # the default
//	  list:
//	    - id: mistral-7b-instruct
//	      license: Apache-2.0
//	      license_url: https://www.apache.org/licenses/LICENSE-2.0
//	      commercial_use: true
//	      reviewed: 2026-10-01
//	      reviewer: jane@example.com
//
// A nil *ModelPolicy lists no model and refuses none.
type ModelPolicy struct {
	RequireKnown bool
	Block        []ModelClass // the classes refused

	// OnCardChange is what the gateway does with a model whose card (read with
	// --model-dir) no longer says what its review recorded: "refuse" (the
	// default) or "flag" (serve it, and say so in the metrics and /v1/models).
	OnCardChange string
	// Datasets are the rules that flag training datasets: the policy's, then
	// the defaults; OnDatasetFlag is what `proxy models check` makes of a flag.
	Datasets      modelcard.DatasetRules
	OnDatasetFlag string

	exact    map[string]*ModelLicense
	patterns []*ModelLicense // longest first
	list     []*ModelLicense // in the file's order
	cards    atomic.Pointer[cardState]
}

// modelSectionKeys and modelEntryKeys are the keys the models section knows: any
// other is an error, so that a misspelt key does not pass for a default.
var (
	modelSectionKeys = []string{"require_known_model_license", "block_classes", "list", "on_card_change", "datasets"}
	modelEntryKeys   = []string{"id", "license", "license_url", "class", "commercial_use", "mau_threshold",
		"outputs_may_train_models", "acceptable_use_url", "reviewed", "reviewer", "notes", "card", "card_license", "commit"}
	datasetKeys = []string{"flag", "allow", "defaults", "on_flag"}
)

// parseModelPolicy reads the models section of a policy file.
func parseModelPolicy(node *yaml.Node) (*ModelPolicy, error) {
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		return nil, nil
	}
	if err := checkKeys(node, "models", modelSectionKeys); err != nil {
		return nil, err
	}
	var sec struct {
		RequireKnown bool        `yaml:"require_known_model_license"`
		Block        *[]string   `yaml:"block_classes"`
		List         []yaml.Node `yaml:"list"`
		OnCardChange string      `yaml:"on_card_change"`
		Datasets     yaml.Node   `yaml:"datasets"`
	}
	if err := node.Decode(&sec); err != nil {
		return nil, fmt.Errorf("models: %w", err)
	}
	mp := &ModelPolicy{RequireKnown: sec.RequireKnown, Block: []ModelClass{ModelNonCommercial, ModelResearchOnly},
		OnCardChange: "refuse", Datasets: modelcard.DefaultDatasets(), OnDatasetFlag: "review", exact: map[string]*ModelLicense{}}
	switch sec.OnCardChange {
	case "":
	case "refuse", "flag":
		mp.OnCardChange = sec.OnCardChange
	default:
		return nil, fmt.Errorf("models.on_card_change: %q: want refuse or flag", sec.OnCardChange)
	}
	if sec.Datasets.Kind != 0 {
		if err := mp.parseDatasets(&sec.Datasets); err != nil {
			return nil, err
		}
	}
	if sec.Block != nil {
		mp.Block = nil
		for _, s := range *sec.Block {
			c, err := parseModelClass(s)
			if err != nil {
				return nil, fmt.Errorf("models.block_classes: %w", err)
			}
			mp.Block = append(mp.Block, c)
		}
	}
	for i := range sec.List {
		n := &sec.List[i]
		where := fmt.Sprintf("models.list: entry %d (line %d)", i+1, n.Line)
		if err := checkKeys(n, where, modelEntryKeys); err != nil {
			return nil, err
		}
		m := &ModelLicense{}
		if err := n.Decode(m); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := m.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if err := mp.add(m); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
	}
	return mp, nil
}

// checkKeys reports an error for a key of mapping node that is not in known.
func checkKeys(node *yaml.Node, where string, known []string) error {
	if node.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: %s: want a mapping", node.Line, where)
	}
	for i := 0; i+1 < len(node.Content); i += 2 {
		if k := node.Content[i]; !slices.Contains(known, k.Value) {
			return fmt.Errorf("line %d: %s: unknown key %q (want %s)", k.Line, where, k.Value, strings.Join(known, ", "))
		}
	}
	return nil
}

// check validates an entry and settles its class.
func (m *ModelLicense) check() error {
	if m.ID == "" {
		return fmt.Errorf("no id")
	}
	if _, err := path.Match(m.ID, ""); err != nil {
		return fmt.Errorf("id %q: %w", m.ID, err)
	}
	if m.License == "" {
		return fmt.Errorf("model %q has no license (an SPDX id or a LicenseRef-)", m.ID)
	}
	if m.Commit != "" && !commitPrefix.MatchString(m.Commit) {
		return fmt.Errorf("model %q: commit: want the snapshot's commit, 7 to 40 hex digits: %q", m.ID, m.Commit)
	}
	if m.Class == "" {
		m.Class = classOfModelLicense(m.License, m.CommercialUse)
	} else if _, err := parseModelClass(string(m.Class)); err != nil {
		return fmt.Errorf("model %q: %w", m.ID, err)
	}
	if cu := m.CommercialUse; cu != nil {
		switch {
		case !*cu && (m.Class == ModelOpen || m.Class == ModelRestricted):
			return fmt.Errorf("model %q: commercial_use: false contradicts class %s", m.ID, m.Class)
		case *cu && (m.Class == ModelNonCommercial || m.Class == ModelResearchOnly):
			return fmt.Errorf("model %q: commercial_use: true contradicts class %s", m.ID, m.Class)
		}
	}
	if m.MAUThreshold < 0 {
		return fmt.Errorf("model %q: negative mau_threshold", m.ID)
	}
	if m.Reviewed != "" {
		if _, err := time.Parse(time.DateOnly, m.Reviewed); err != nil {
			return fmt.Errorf("model %q: reviewed: want a date, YYYY-MM-DD: %q", m.ID, m.Reviewed)
		}
	}
	return nil
}

// classOfModelLicense is the class of a license the policy did not classify.
func classOfModelLicense(expr string, commercialUse *bool) ModelClass {
	if commercialUse != nil && !*commercialUse {
		return ModelNonCommercial
	}
	u := strings.ToUpper(expr)
	if strings.Contains(u, "NONCOMMERCIAL") || slices.Contains(strings.FieldsFunc(u, func(r rune) bool { return r == '-' || r == '.' }), "NC") {
		return ModelNonCommercial
	}
	if c, err := license.Classify(expr); err == nil && c != license.Unknown {
		return ModelOpen
	}
	return ModelUnknown
}

func (mp *ModelPolicy) add(m *ModelLicense) error {
	for _, o := range mp.list {
		if o.ID == m.ID {
			return fmt.Errorf("model %q is listed twice", m.ID)
		}
	}
	mp.list = append(mp.list, m)
	if strings.ContainsAny(m.ID, "*?[") {
		mp.patterns = append(mp.patterns, m)
		slices.SortStableFunc(mp.patterns, func(a, b *ModelLicense) int { return len(b.ID) - len(a.ID) })
	} else {
		mp.exact[m.ID] = m
	}
	return nil
}

// Lookup returns the entry for a model id, or nil when the policy does not list it.
func (mp *ModelPolicy) Lookup(model string) *ModelLicense {
	if mp == nil {
		return nil
	}
	if m, ok := mp.exact[model]; ok {
		return m
	}
	for _, m := range mp.patterns {
		if ok, _ := path.Match(m.ID, model); ok {
			return m
		}
	}
	return nil
}

// A modelDecision is the gate's answer for one model id.
type modelDecision struct {
	entry   *ModelLicense // nil when unlisted
	card    *cardStatus   // the model's card, when --model-dir has it
	refused bool
	code    string // the error code of a refusal
	reason  string // why it is refused, for the client
}

// Decide says whether requests for model may pass.
func (mp *ModelPolicy) Decide(model string) modelDecision {
	m := mp.Lookup(model)
	st := mp.cardFor(m, model)
	switch {
	case mp == nil:
		return modelDecision{}
	case m == nil && mp.RequireKnown:
		return modelDecision{refused: true, code: "model_license_unknown",
			reason: "it is not in this gateway's model license list, and the policy requires a reviewed license for every model"}
	case m == nil:
		return modelDecision{}
	case slices.Contains(mp.Block, m.Class):
		return modelDecision{entry: m, card: st, refused: true, code: "model_license_blocked",
			reason: fmt.Sprintf("its license, %s, is %s, and the policy blocks %s models", m.describe(), m.Class, m.Class)}
	case m.Class == ModelUnknown && mp.RequireKnown:
		return modelDecision{entry: m, card: st, refused: true, code: "model_license_unknown",
			reason: fmt.Sprintf("its license, %s, has not been classified, and the policy requires a known license for every model", m.describe())}
	case st != nil && len(st.changes) > 0 && mp.OnCardChange != "flag":
		return modelDecision{entry: m, card: st, refused: true, code: "model_card_changed",
			reason: fmt.Sprintf("%s (card %s in %s); the policy refuses a model whose card no longer matches its review",
				modelcard.ChangeMessage(st.changes), st.card.ID, st.card.File)}
	}
	return modelDecision{entry: m, card: st}
}

// describe names a license and where to read it.
func (m *ModelLicense) describe() string {
	if m.LicenseURL != "" {
		return m.License + " (" + m.LicenseURL + ")"
	}
	return m.License
}

// message is the error a client gets for a refused request.
func (d modelDecision) message(model string) string {
	msg := fmt.Sprintf("cleanroom refuses model %q: %s.", model, d.reason)
	if e := d.entry; e != nil && (e.Reviewed != "" || e.Reviewer != "") {
		msg += " License reviewed"
		if e.Reviewed != "" {
			msg += " " + e.Reviewed
		}
		if e.Reviewer != "" {
			msg += " by " + e.Reviewer
		}
		msg += "."
	}
	return msg
}

// Labels of cleanroom_model_requests_total for a model: the policy's entry, never
// the client's string, so that the label values are bounded by the policy file.
const unlisted = "unlisted"

func (d modelDecision) labels() (model, license, class, decision string) {
	model, license, class, decision = unlisted, unlisted, string(ModelUnknown), "allowed"
	if e := d.entry; e != nil {
		model, license, class = e.ID, e.License, string(e.Class)
	}
	if d.refused {
		decision = "refused"
	}
	return
}

// modelLicenseInfo is the license object the proxy adds to a model of GET /v1/models.
type modelLicenseInfo struct {
	ID                    string `json:"id,omitempty"`
	URL                   string `json:"url,omitempty"`
	Class                 string `json:"class"`
	CommercialUse         *bool  `json:"commercial_use,omitempty"`
	MAUThreshold          int64  `json:"mau_threshold,omitempty"`
	OutputsMayTrainModels *bool  `json:"outputs_may_train_models,omitempty"`
	AcceptableUseURL      string `json:"acceptable_use_url,omitempty"`
	Reviewed              string `json:"reviewed,omitempty"`
	Reviewer              string `json:"reviewer,omitempty"`
	Notes                 string `json:"notes,omitempty"`
	Listed                bool   `json:"listed"`
	Allowed               bool   `json:"allowed"`          // whether this gateway passes requests for the model
	Reason                string `json:"reason,omitempty"` // why not
	// Card is what the model's card says, when the proxy reads it (--model-dir),
	// beside the review's license above.
	Card *cardInfo `json:"card,omitempty"`
}

// info returns the license object for a model, or nil for a model the policy
// neither lists nor refuses.
func (mp *ModelPolicy) info(model string) *modelLicenseInfo {
	d := mp.Decide(model)
	if d.entry == nil && !d.refused {
		return nil
	}
	li := &modelLicenseInfo{Class: string(ModelUnknown), Allowed: !d.refused}
	if d.refused {
		li.Reason = d.reason
	}
	if e := d.entry; e != nil {
		li.ID, li.URL, li.Class, li.Listed = e.License, e.LicenseURL, string(e.Class), true
		li.CommercialUse, li.MAUThreshold, li.OutputsMayTrainModels = e.CommercialUse, e.MAUThreshold, e.OutputsMayTrainModels
		li.AcceptableUseURL, li.Reviewed, li.Reviewer, li.Notes = e.AcceptableUseURL, e.Reviewed, e.Reviewer, e.Notes
	}
	if d.card != nil {
		li.Card = d.card.info()
	}
	return li
}
