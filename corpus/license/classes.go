package license

import (
	"strings"

	"github.com/github/go-spdx/v2/spdxexp/spdxlicenses"
)

// classRules give the class of SPDX license ids by family: a pattern ending in "*"
// matches ids that start with the rest, others match exactly. The first rule that
// matches decides; an id of the SPDX list that no rule matches is Permissive (the long
// tail of the list is MIT-, BSD- and HPND-like licenses). Ids that are neither
// copyleft nor permissive (non-commercial, no-derivatives and source-available terms)
// are Unknown, for the policy to decide.
var classRules = []struct {
	pattern string
	class   Class
}{
	// Share-alike before the non-commercial rule that would take it.
	{"CC-BY-NC-SA-*", Strong},
	{"CC-BY-NC-*", Unknown}, {"CC-BY-ND-*", Unknown}, {"BUSL-*", Unknown}, {"Elastic-*", Unknown},
	{"PolyForm-*", Unknown}, {"FSL-*", Unknown}, {"Hippocratic-*", Unknown}, {"NCGL-UK-*", Unknown},
	{"CPOL-*", Unknown}, {"Aladdin", Unknown}, {"UnRAR", Unknown}, {"IEC-Code-Components-EULA", Unknown},

	{"GPL-*", Strong}, {"AGPL-*", Strong}, {"EUPL-*", Strong}, {"OSL-*", Strong}, {"NPOSL-*", Strong},
	{"RPL-*", Strong}, {"SSPL-*", Strong}, {"Sleepycat", Strong}, {"CC-BY-SA-*", Strong},
	{"CC-SA-*", Strong}, {"CECILL-B", Permissive}, {"CECILL-C", Weak}, {"CECILL-*", Strong},
	{"copyleft-next-*", Strong}, {"GFDL-*", Strong}, {"QPL-*", Strong}, {"SMAIL-GPL", Strong},
	{"CAL-*", Strong}, {"TGPPL-*", Strong}, {"ESA-PL-strong-copyleft-*", Strong},
	{"ESA-PL-weak-copyleft-*", Weak}, {"CERN-OHL-S-*", Strong}, {"CERN-OHL-W-*", Weak},
	{"CERN-OHL-1.*", Weak}, {"TAPR-OHL-*", Weak}, {"CDLA-Sharing-*", Strong}, {"ODbL-*", Strong},
	{"LiLiQ-Rplus-*", Strong}, {"LiLiQ-R-*", Weak}, {"D-FSL-*", Strong}, {"LAL-*", Strong},
	{"UCL-*", Strong}, {"TOSL", Strong}, {"Parity-*", Strong}, {"NGPL", Strong}, {"SimPL-*", Strong},

	{"LGPL-*", Weak}, {"LGPLLR", Weak}, {"MPL-*", Weak}, {"EPL-*", Weak}, {"CDDL-*", Weak},
	{"CPL-*", Weak}, {"CPAL-*", Weak}, {"MS-RL", Weak}, {"APSL-*", Weak}, {"ErlPL-*", Weak},
	{"LPL-*", Weak}, {"IPL-*", Weak}, {"NPL-*", Weak}, {"SPL-*", Weak}, {"OFL-*", Weak},
	{"IPA", Weak}, {"Arphic-*", Weak}, {"eCos-*", Weak}, {"RHeCos-*", Weak}, {"wxWindows", Weak},
	{"OCCT-PL", Weak}, {"CATOSL-*", Weak}, {"CUA-OPL-*", Weak}, {"Interbase-*", Weak},
	{"gSOAP-*", Weak}, {"NOSL", Weak}, {"OCLC-*", Weak}, {"OPL-1.0", Weak}, {"RPSL-*", Weak},
	{"RSCPL", Weak}, {"SugarCRM-*", Weak}, {"SISSL*", Weak}, {"Frameworx-*", Weak},
	{"NASA-*", Weak}, {"BitTorrent-*", Weak}, {"Motosoto", Weak}, {"Nokia", Weak},
	{"OSET-PL-*", Weak}, {"APL-*", Weak}, {"SGI-B-1.*", Weak}, {"Watcom-*", Weak},
	{"MMPL-*", Weak}, {"TPL-*", Weak},
}

// classOfID returns the class of a license id as canonicalID spells it.
func classOfID(id string) Class {
	if strings.HasPrefix(id, "LicenseRef-") || strings.HasPrefix(id, "DocumentRef-") {
		return Unknown
	}
	id = strings.TrimSuffix(id, "+")
	for _, r := range classRules {
		if prefix, ok := strings.CutSuffix(r.pattern, "*"); ok {
			if strings.HasPrefix(id, prefix) {
				return r.class
			}
		} else if id == r.pattern {
			return r.class
		}
	}
	if ok, _ := spdxlicenses.IsActiveLicense(id); ok {
		return Permissive
	}
	if ok, _ := spdxlicenses.IsDeprecatedLicense(id); ok {
		return Permissive
	}
	return Unknown
}
