package modelcard

import (
	"path"
	"strings"
)

// A DatasetRule flags the training datasets whose ids match a pattern: the hub's
// dataset id (ORG/NAME) or its name alone, case-insensitively, '*' matching any
// run of characters but '/'.
type DatasetRule struct {
	Pattern string `json:"pattern" yaml:"id"`
	Reason  string `json:"reason" yaml:"reason"`
}

// DefaultDatasetRules are the datasets known to be under litigation or of
// disputed license. The list is data: a policy adds to it and allows past it.
var DefaultDatasetRules = []DatasetRule{
	{"*books3*", "Books3 is some 190,000 books copied without permission; it was taken down after a DMCA notice of the Danish Rights Alliance (2023) and is at issue in copyright suits against model makers (Kadrey v. Meta)"},
	{"the_pile*", pileReason},
	{"pile", pileReason},
	{"laion*", "LAION's image-text pairs were scraped from the web without the rights holders' licenses; LAION is sued in Kneschke v. LAION and its data is at issue in Andersen v. Stability AI, and LAION-5B was withdrawn in 2023 for containing abuse material"},
}

const pileReason = "The Pile's books component is Books3 (pirated books, taken down in 2023, at issue in Kadrey v. Meta); EleutherAI no longer distributes it"

// DefaultDatasetAllow are datasets the default rules would flag that are known
// not to hold the disputed part: The Pile without its copyrighted components.
var DefaultDatasetAllow = []string{"monology/pile-uncopyrighted"}

// A Flag is a training dataset of a card that a rule flags.
type Flag struct {
	Dataset string `json:"dataset"`
	Model   string `json:"model"` // the card that lists it: the model or a base along its lineage
	Reason  string `json:"reason"`
}

// DatasetRules are the rules in force: the policy's, then the defaults (unless
// the policy drops them), with an allow list that wins over both.
type DatasetRules struct {
	Flag  []DatasetRule
	Allow []string
}

// DefaultDatasets are the default rules.
func DefaultDatasets() DatasetRules {
	return DatasetRules{Flag: append([]DatasetRule(nil), DefaultDatasetRules...), Allow: append([]string(nil), DefaultDatasetAllow...)}
}

// matchDataset reports whether a dataset id matches a pattern: the whole id, or
// its name when the pattern has no '/'.
func matchDataset(pattern, id string) bool {
	p, d := strings.ToLower(pattern), strings.ToLower(id)
	if ok, _ := path.Match(p, d); ok {
		return true
	}
	if !strings.Contains(p, "/") {
		ok, _ := path.Match(p, d[strings.LastIndexByte(d, '/')+1:])
		return ok
	}
	return false
}

// Check returns the flags of a card's datasets.
func (r DatasetRules) Check(c *Card) []Flag {
	var out []Flag
	for _, d := range c.Datasets {
		allowed := false
		for _, a := range r.Allow {
			allowed = allowed || matchDataset(a, d)
		}
		if allowed {
			continue
		}
		for _, rule := range r.Flag {
			if matchDataset(rule.Pattern, d) {
				out = append(out, Flag{Dataset: d, Model: c.ID, Reason: rule.Reason})
				break
			}
		}
	}
	return out
}
