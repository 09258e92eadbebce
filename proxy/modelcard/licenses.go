package modelcard

import (
	"fmt"
	"slices"
	"strings"
)

// A Class says what a model's license lets a company do with the model.
type Class string

// License classes, from the most open to the strictest.
const (
	// Open is an OSI-approved or permissive license: Apache-2.0, MIT, ...
	Open Class = "open"
	// Restricted allows commercial use under conditions: a threshold of monthly
	// active users, an acceptable-use policy, no training of other models.
	Restricted Class = "restricted"
	// Unknown is a license no one has classified: it needs a review.
	Unknown Class = "unknown"
	// NonCommercial forbids commercial use (CC-BY-NC-*, ...).
	NonCommercial Class = "non-commercial"
	// ResearchOnly allows research and evaluation only.
	ResearchOnly Class = "research-only"
)

// Classes are the classes, from the most open to the strictest: along a lineage
// the strictest wins. Unknown is stricter than restricted (it may be anything)
// and laxer than non-commercial (which is known to forbid commercial use).
var Classes = []Class{Open, Restricted, Unknown, NonCommercial, ResearchOnly}

// ParseClass parses a class name.
func ParseClass(s string) (Class, error) {
	for _, c := range Classes {
		if s == string(c) {
			return c, nil
		}
	}
	return "", fmt.Errorf("unknown model license class %q (want open, restricted, non-commercial, research-only or unknown)", s)
}

// Strictest returns the stricter of two classes.
func Strictest(a, b Class) Class {
	if slices.Index(Classes, b) > slices.Index(Classes, a) {
		return b
	}
	return a
}

// Commercial reports whether a class allows commercial use (under conditions or
// not); nil for unknown.
func (c Class) Commercial() *bool {
	var v bool
	switch c {
	case Open, Restricted:
		v = true
	case NonCommercial, ResearchOnly:
	default:
		return nil
	}
	return &v
}

// A License is what the gateway knows about one of the hub's license ids: its
// class and the conditions users check.
type License struct {
	ID    string `json:"id"`             // the hub's license id (the card's LicenseTag)
	SPDX  string `json:"spdx,omitempty"` // the SPDX id, or a LicenseRef-
	Name  string `json:"name"`
	URL   string `json:"url,omitempty"`
	Class Class  `json:"class"`
	// MAUThreshold is the number of monthly active users above which the
	// license needs another agreement; 0 for none.
	MAUThreshold int64 `json:"mau_threshold,omitempty"`
	// AcceptableUse is the license's acceptable-use (or use-restrictions)
	// policy, which flows down to every user and derivative; "" for none.
	AcceptableUse string `json:"acceptable_use,omitempty"`
	// NoTrainingOnOutputs: the outputs may not be used to train or improve
	// other models (other than derivatives of this one).
	NoTrainingOnOutputs bool `json:"no_training_on_outputs,omitempty"`
	// Attribution is what the license asks a user to show; "" for no more than
	// keeping the notices.
	Attribution string `json:"attribution,omitempty"`
	// NoDerivatives: modified versions (fine-tunes) may not be shared.
	NoDerivatives bool `json:"no_derivatives,omitempty"`
}

// Conditions lists what a user of a model under the license must check.
func (l *License) Conditions() []string {
	var out []string
	if l.MAUThreshold > 0 {
		out = append(out, fmt.Sprintf("a separate license is needed above %s monthly active users", thousands(l.MAUThreshold)))
	}
	if l.AcceptableUse != "" {
		out = append(out, "acceptable-use policy: "+l.AcceptableUse)
	}
	if l.NoTrainingOnOutputs {
		out = append(out, "outputs may not be used to train or improve other models")
	}
	if l.Attribution != "" {
		out = append(out, "attribution: "+l.Attribution)
	}
	if l.NoDerivatives {
		out = append(out, "no derivatives: modified versions may not be shared")
	}
	return out
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// licenses is the hub's license ids the gateway classifies (and a few license_name
// values of license: other that well-known cards use). It is a summary for triage,
// not legal advice: a reviewer reads the license itself.
var licenses = func() map[string]*License {
	m := map[string]*License{}
	add := func(l License) {
		if _, dup := m[l.ID]; dup {
			panic("modelcard: license " + l.ID + " twice")
		}
		m[l.ID] = &l
	}
	open := func(id, spdx, name, url string) { add(License{ID: id, SPDX: spdx, Name: name, URL: url, Class: Open}) }
	open("apache-2.0", "Apache-2.0", "Apache License 2.0", "https://www.apache.org/licenses/LICENSE-2.0")
	open("mit", "MIT", "MIT License", "https://opensource.org/license/mit")
	open("bsd", "BSD-4-Clause", "BSD License", "")
	open("bsd-2-clause", "BSD-2-Clause", "BSD 2-Clause License", "https://opensource.org/license/bsd-2-clause")
	open("bsd-3-clause", "BSD-3-Clause", "BSD 3-Clause License", "https://opensource.org/license/bsd-3-clause")
	open("bsd-3-clause-clear", "BSD-3-Clause-Clear", "BSD 3-Clause Clear License", "")
	open("isc", "ISC", "ISC License", "https://opensource.org/license/isc-license-txt")
	open("zlib", "Zlib", "zlib License", "")
	open("unlicense", "Unlicense", "The Unlicense", "https://unlicense.org/")
	open("cc0-1.0", "CC0-1.0", "Creative Commons Zero 1.0", "https://creativecommons.org/publicdomain/zero/1.0/")
	open("bsl-1.0", "BSL-1.0", "Boost Software License 1.0", "")
	open("wtfpl", "WTFPL", "WTFPL", "")
	open("postgresql", "PostgreSQL", "PostgreSQL License", "")
	open("ncsa", "NCSA", "University of Illinois/NCSA Open Source License", "")
	open("ms-pl", "MS-PL", "Microsoft Public License", "")
	open("afl-3.0", "AFL-3.0", "Academic Free License 3.0", "")
	open("ecl-2.0", "ECL-2.0", "Educational Community License 2.0", "")
	open("artistic-2.0", "Artistic-2.0", "Artistic License 2.0", "")
	open("ofl-1.1", "OFL-1.1", "SIL Open Font License 1.1", "")
	open("mpl-2.0", "MPL-2.0", "Mozilla Public License 2.0", "https://www.mozilla.org/MPL/2.0/")
	open("epl-1.0", "EPL-1.0", "Eclipse Public License 1.0", "")
	open("epl-2.0", "EPL-2.0", "Eclipse Public License 2.0", "")
	open("eupl-1.1", "EUPL-1.1", "European Union Public License 1.1", "")
	open("eupl-1.2", "EUPL-1.2", "European Union Public License 1.2", "")
	open("osl-3.0", "OSL-3.0", "Open Software License 3.0", "")
	open("lgpl", "LGPL-3.0-or-later", "GNU Lesser General Public License", "")
	open("lgpl-2.1", "LGPL-2.1-only", "GNU Lesser General Public License 2.1", "")
	open("lgpl-3.0", "LGPL-3.0-only", "GNU Lesser General Public License 3.0", "")
	open("lgpl-lr", "LicenseRef-LGPL-LR", "Lesser General Public License for Linguistic Resources", "")
	open("gpl", "GPL-3.0-or-later", "GNU General Public License", "")
	open("gpl-2.0", "GPL-2.0-only", "GNU General Public License 2.0", "")
	open("gpl-3.0", "GPL-3.0-only", "GNU General Public License 3.0", "")
	open("agpl-3.0", "AGPL-3.0-only", "GNU Affero General Public License 3.0", "")
	open("gfdl", "GFDL-1.3-or-later", "GNU Free Documentation License", "")
	open("cdla-permissive-1.0", "CDLA-Permissive-1.0", "Community Data License Agreement Permissive 1.0", "")
	open("cdla-permissive-2.0", "CDLA-Permissive-2.0", "Community Data License Agreement Permissive 2.0", "")
	open("cdla-sharing-1.0", "CDLA-Sharing-1.0", "Community Data License Agreement Sharing 1.0", "")
	open("odbl", "ODbL-1.0", "Open Database License", "")
	open("odc-by", "ODC-By-1.0", "Open Data Commons Attribution License", "")
	open("pddl", "PDDL-1.0", "Open Data Commons Public Domain Dedication and License", "")
	open("openmdw-1.0", "LicenseRef-OpenMDW-1.0", "OpenMDW License 1.0", "")
	for _, v := range []string{"2.0", "2.5", "3.0", "4.0"} {
		add(License{ID: "cc-by-" + v, SPDX: "CC-BY-" + v, Name: "Creative Commons Attribution " + v, Class: Open,
			URL: "https://creativecommons.org/licenses/by/" + v + "/", Attribution: "credit the creator and link the license"})
	}
	for _, v := range []string{"3.0", "4.0"} {
		add(License{ID: "cc-by-sa-" + v, SPDX: "CC-BY-SA-" + v, Name: "Creative Commons Attribution-ShareAlike " + v, Class: Open,
			URL: "https://creativecommons.org/licenses/by-sa/" + v + "/", Attribution: "credit the creator; adaptations under the same license"})
	}
	add(License{ID: "cc-by-nd-4.0", SPDX: "CC-BY-ND-4.0", Name: "Creative Commons Attribution-NoDerivatives 4.0", Class: Open,
		URL: "https://creativecommons.org/licenses/by-nd/4.0/", Attribution: "credit the creator", NoDerivatives: true})
	nc := func(id, spdx, name, path string, nd bool) {
		add(License{ID: id, SPDX: spdx, Name: name, URL: "https://creativecommons.org/licenses/" + path + "/", Class: NonCommercial,
			Attribution: "credit the creator", NoDerivatives: nd})
	}
	nc("cc-by-nc-2.0", "CC-BY-NC-2.0", "Creative Commons Attribution-NonCommercial 2.0", "by-nc/2.0", false)
	nc("cc-by-nc-3.0", "CC-BY-NC-3.0", "Creative Commons Attribution-NonCommercial 3.0", "by-nc/3.0", false)
	nc("cc-by-nc-4.0", "CC-BY-NC-4.0", "Creative Commons Attribution-NonCommercial 4.0", "by-nc/4.0", false)
	nc("cc-by-nc-sa-2.0", "CC-BY-NC-SA-2.0", "Creative Commons Attribution-NonCommercial-ShareAlike 2.0", "by-nc-sa/2.0", false)
	nc("cc-by-nc-sa-3.0", "CC-BY-NC-SA-3.0", "Creative Commons Attribution-NonCommercial-ShareAlike 3.0", "by-nc-sa/3.0", false)
	nc("cc-by-nc-sa-4.0", "CC-BY-NC-SA-4.0", "Creative Commons Attribution-NonCommercial-ShareAlike 4.0", "by-nc-sa/4.0", false)
	nc("cc-by-nc-nd-3.0", "CC-BY-NC-ND-3.0", "Creative Commons Attribution-NonCommercial-NoDerivs 3.0", "by-nc-nd/3.0", true)
	nc("cc-by-nc-nd-4.0", "CC-BY-NC-ND-4.0", "Creative Commons Attribution-NonCommercial-NoDerivatives 4.0", "by-nc-nd/4.0", true)

	// Responsible AI licenses: commercial use, with use restrictions that flow down.
	rail := func(id, name, url string) {
		add(License{ID: id, SPDX: "LicenseRef-" + id, Name: name, URL: url, Class: Restricted,
			AcceptableUse: "the license's use restrictions (Attachment A), passed on to every user and derivative"})
	}
	rail("openrail", "Open RAIL", "https://huggingface.co/blog/open_rail")
	rail("openrail++", "Open RAIL++-M", "")
	rail("bigscience-openrail-m", "BigScience Open RAIL-M", "https://www.licenses.ai/blog/2022/8/26/bigscience-open-rail-m-license")
	rail("bigscience-bloom-rail-1.0", "BigScience BLOOM RAIL 1.0", "https://huggingface.co/spaces/bigscience/license")
	rail("creativeml-openrail-m", "CreativeML Open RAIL-M", "")
	rail("bigcode-openrail-m", "BigCode Open RAIL-M v1", "https://www.bigcode-project.org/docs/pages/bigcode-openrail/")

	// Community licenses of model makers.
	llama := func(id, name, url, attribution string, noTraining bool) {
		add(License{ID: id, SPDX: "LicenseRef-" + strings.ReplaceAll(name, " ", "-"), Name: name, URL: url, Class: Restricted,
			MAUThreshold: 700_000_000, AcceptableUse: "Meta's (https://llama.meta.com/use-policy)", NoTrainingOnOutputs: noTraining,
			Attribution: attribution})
	}
	llama("llama2", "Llama 2 Community License", "https://ai.meta.com/llama/license/", "", true)
	llama("llama3", "Meta Llama 3 Community License", "https://llama.meta.com/llama3/license/",
		`"Built with Meta Llama 3"; a derivative's name begins with "Llama 3"`, true)
	llama("llama3.1", "Llama 3.1 Community License", "https://llama.meta.com/llama3_1/license/",
		`"Built with Llama"; a derivative's name begins with "Llama"`, false)
	llama("llama3.2", "Llama 3.2 Community License", "https://www.llama.com/llama3_2/license/",
		`"Built with Llama"; a derivative's name begins with "Llama"`, false)
	llama("llama3.3", "Llama 3.3 Community License", "https://www.llama.com/llama3_3/license/",
		`"Built with Llama"; a derivative's name begins with "Llama"`, false)
	llama("llama4", "Llama 4 Community License", "https://www.llama.com/llama4/license/",
		`"Built with Llama"; a derivative's name begins with "Llama"`, false)
	add(License{ID: "gemma", SPDX: "LicenseRef-Gemma", Name: "Gemma Terms of Use", URL: "https://ai.google.dev/gemma/terms",
		Class: Restricted, AcceptableUse: "the Gemma prohibited use policy, passed on to every user and derivative"})
	add(License{ID: "qwen", SPDX: "LicenseRef-Qwen", Name: "Qwen License Agreement", Class: Restricted, MAUThreshold: 100_000_000,
		Attribution: `"Built with Qwen"`})
	add(License{ID: "deepseek", SPDX: "LicenseRef-DeepSeek", Name: "DeepSeek License Agreement", Class: Restricted,
		AcceptableUse: "the license's use restrictions (Attachment A)"})

	// Research and non-commercial licenses.
	add(License{ID: "h-research", SPDX: "LicenseRef-H-Research", Name: "H Research License", Class: ResearchOnly})
	add(License{ID: "intel-research", SPDX: "LicenseRef-Intel-Research", Name: "Intel Research Use License", Class: ResearchOnly})
	add(License{ID: "apple-amlr", SPDX: "LicenseRef-Apple-AMLR", Name: "Apple Machine Learning Research Model License", Class: ResearchOnly})
	add(License{ID: "fair-noncommercial-research-license", SPDX: "LicenseRef-FAIR-NC-Research", Name: "FAIR Noncommercial Research License", Class: ResearchOnly})
	add(License{ID: "deepfloyd-if-license", SPDX: "LicenseRef-DeepFloyd-IF", Name: "DeepFloyd IF License", Class: ResearchOnly})
	add(License{ID: "tongyi-qianwen-research", SPDX: "LicenseRef-Tongyi-Qianwen-Research", Name: "Tongyi Qianwen Research License", Class: ResearchOnly})
	add(License{ID: "mnpl", SPDX: "LicenseRef-Mistral-MNPL", Name: "Mistral AI Non-Production License", Class: ResearchOnly})
	add(License{ID: "llama-license", SPDX: "LicenseRef-LLaMA-1", Name: "LLaMA (version 1) license: non-commercial research use only",
		Class: ResearchOnly})
	return m
}()

// LookupLicense returns what the gateway knows of a card's license: the entry of
// its LicenseTag, or an unknown license named after it. The second result says
// why the class is unknown, "" when it is known.
func LookupLicense(c *Card) (*License, string) {
	tag := c.LicenseTag()
	if l, ok := licenses[tag]; ok {
		out := *l
		if c.LicenseLink != "" && out.URL == "" {
			out.URL = c.LicenseLink
		}
		return &out, ""
	}
	l := &License{ID: tag, Name: c.LicenseName, URL: c.LicenseLink, Class: Unknown}
	switch {
	case tag == "":
		return l, "the card names no license"
	case tag == "other":
		return l, "the card's license is \"other\" with no license_name: read its license_link or LICENSE file"
	case tag == "unknown":
		return l, "the card says its license is unknown"
	case strings.EqualFold(c.License, "other"):
		return l, fmt.Sprintf("the card's license is %q (license: other), which cleanroom does not classify", c.LicenseName)
	}
	return l, fmt.Sprintf("the card's license %q is not one cleanroom classifies", tag)
}
