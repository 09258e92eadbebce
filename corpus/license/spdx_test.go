package license

import (
	"errors"
	"strings"
	"testing"

	"github.com/github/go-spdx/v2/spdxexp/spdxlicenses"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		expr    string
		want    Class
		wantErr bool
	}{
		{"GPL-2.0 WITH Linux-syscall-note", Strong, false},
		{"GPL-2.0 OR BSD-2-Clause", Permissive, false},
		{"(GPL-2.0 OR MIT) AND LGPL-2.1", Weak, false},
		{"LGPL-2.1+", Weak, false},
		{"LicenseRef-x", Unknown, false},
		{"garbage", Unknown, true},
		{"GPL-2.0-only", Strong, false},
		{"GPL-2.0+", Strong, false},
		{"GPL-2.0", Strong, false},
		{"GPL-1.0+", Strong, false},
		{"gpl-2.0 or mit", Permissive, false},
		{"GPL-2.0 or Linux-OpenIB", Permissive, false},
		{"((GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause)", Permissive, false},
		{"GPL-2.0-or-later WITH GCC-exception-2.0", Strong, false},
		{"GPL-2.0 WITH Classpath-exception-2.0", Strong, false},
		{"MPL-2.0", Weak, false},
		{"MPL-1.1+", Weak, false},
		{"EPL-2.0 OR Apache-2.0", Permissive, false},
		{"AGPL-3.0-or-later", Strong, false},
		{"MIT AND AGPL-3.0-only", Strong, false},
		{"GPL-3.0-only OR LicenseRef-Acme", Unknown, false},
		{"GPL-3.0-only AND LicenseRef-Acme", Strong, false},
		{"LGPL-2.1-only AND LicenseRef-Acme", Weak, false},
		{"MIT AND LicenseRef-Acme", Unknown, false},
		{"DocumentRef-spdx-tool-1.2:LicenseRef-MIT-Style-2", Unknown, false},
		{"CECILL-2.1", Strong, false},
		{"CECILL-B", Permissive, false},
		{"CECILL-C", Weak, false},
		{"CC-BY-SA-4.0", Strong, false},
		{"CC-BY-4.0", Permissive, false},
		{"CC-BY-NC-4.0", Unknown, false},
		{"CC0-1.0", Permissive, false},
		{"Zlib", Permissive, false},
		{"Sleepycat", Strong, false},
		{"BSL-1.0", Permissive, false},
		{"Linux-man-pages-copyleft", Permissive, false},
		{"", Unknown, false},
		{"MIT AND", Unknown, true},
		{"(MIT", Unknown, true},
		{"MIT)", Unknown, true},
		{"MIT OR OR GPL-2.0", Unknown, true},
		{"GPL-2.0 WITH", Unknown, true},
		{"GPL-2.0 WITH no-such-exception", Unknown, true},
		{"Foo-1.0", Unknown, true},
		{"<SPDX-License> WITH Linux-syscall-note", Unknown, true},
		{"LicenseRef-", Unknown, true},
	}
	for _, tt := range tests {
		got, err := Classify(tt.expr)
		if tt.wantErr {
			if err == nil || !errors.Is(err, ErrBadExpression) {
				t.Errorf("Classify(%q) = %v, %v; want an ErrBadExpression", tt.expr, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Classify(%q) = %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
}

// TestClassifyEveryID checks that every id of the SPDX list classifies, and that only
// the non-free ones come out Unknown.
func TestClassifyEveryID(t *testing.T) {
	ids := append(spdxlicenses.GetLicenses(), spdxlicenses.GetDeprecated()...)
	counts := make(map[Class]int)
	for _, id := range ids {
		c, err := Classify(id)
		if err != nil {
			t.Errorf("Classify(%q): %v", id, err)
			continue
		}
		counts[c]++
		if c == Unknown {
			switch {
			case hasAnyPrefix(id, "CC-BY-NC-", "CC-BY-ND-", "BUSL-", "Elastic-", "PolyForm-", "FSL-", "Hippocratic-", "NCGL-UK-", "CPOL-"),
				id == "Aladdin", id == "UnRAR", id == "IEC-Code-Components-EULA":
			default:
				t.Errorf("Classify(%q) = unknown; want a known class", id)
			}
		}
	}
	if counts[Strong] < 50 || counts[Weak] < 40 || counts[Permissive] < 400 {
		t.Errorf("class counts %v: too few copyleft or permissive ids", counts)
	}
	t.Logf("%d SPDX ids: %d strong, %d weak, %d permissive, %d unknown", len(ids), counts[Strong], counts[Weak], counts[Permissive], counts[Unknown])
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}

func TestParseClass(t *testing.T) {
	for c := Permissive; c < numClasses; c++ {
		got, err := ParseClass(c.String())
		if err != nil || got != c {
			t.Errorf("ParseClass(%q) = %v, %v; want %v", c.String(), got, err, c)
		}
	}
	if got, err := ParseClass("STRONG"); err != nil || got != Strong {
		t.Errorf("ParseClass(STRONG) = %v, %v", got, err)
	}
	if _, err := ParseClass("copyleft"); err == nil {
		t.Errorf("ParseClass(copyleft): no error")
	}
	if !(Permissive < Unknown && Unknown < Weak && Weak < Strong) {
		t.Errorf("classes out of order")
	}
}

func TestModernID(t *testing.T) {
	for id, want := range map[string]string{"GPL-2.0": "GPL-2.0-only", "GPL-2.0+": "GPL-2.0-or-later",
		"LGPL-2.1+": "LGPL-2.1-or-later", "LGPL-2.1": "LGPL-2.1-only", "MIT": "MIT", "MPL-1.1+": "MPL-1.1+",
		"GPL-2.0-with-classpath-exception": "GPL-2.0-with-classpath-exception"} {
		if got := modernID(id); got != want {
			t.Errorf("modernID(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestEval(t *testing.T) {
	// Rank: 0 allow, 1 annotate, 2 block; GPL blocks, LGPL annotates, the rest is allowed.
	rank := func(id string, c Class) int {
		switch {
		case strings.HasPrefix(id, "GPL-"):
			return 2
		case c == Weak:
			return 1
		}
		return 0
	}
	for expr, want := range map[string]int{
		"GPL-2.0":                         2,
		"GPL-2.0 WITH Linux-syscall-note": 2,
		"GPL-2.0 OR MIT":                  0,
		"LGPL-2.1 AND GPL-2.0+":           2,
		"(GPL-2.0 or LGPL-2.1) AND MIT":   1,
		"MPL-2.0":                         1,
		"":                                0,
	} {
		got, err := Eval(expr, rank)
		if err != nil || got != want {
			t.Errorf("Eval(%q) = %d, %v; want %d", expr, got, err, want)
		}
	}
	var ids []string
	Eval("GPL-2.0+ AND LGPL-2.1", func(id string, c Class) int { ids = append(ids, id); return 0 })
	if strings.Join(ids, " ") != "GPL-2.0-or-later LGPL-2.1-only" {
		t.Errorf("Eval passes ids %v, want the modern ones", ids)
	}
	if _, err := Eval("GPL-2.0 AND", rank); err == nil {
		t.Error("a broken expression evaluated without error")
	}
}

// TestCanonical checks that license expressions come out as current SPDX ids:
// deprecated GNU ids mapped, redundant parentheses dropped, spelling and operators
// as SPDX has them, LicenseRefs as written.
func TestCanonical(t *testing.T) {
	tests := []struct {
		expr, want string
		wantErr    bool
	}{
		{expr: "GPL-2.0", want: "GPL-2.0-only"},
		{expr: "GPL-2.0+", want: "GPL-2.0-or-later"},
		{expr: "(GPL-2.0)", want: "GPL-2.0-only"},
		{expr: "((GPL-2.0+))", want: "GPL-2.0-or-later"},
		{expr: "GPL-2.0-only", want: "GPL-2.0-only"},
		{expr: "GPL-2.0-or-later", want: "GPL-2.0-or-later"},
		{expr: "GPL-2.0-only+", want: "GPL-2.0-or-later"},
		{expr: "LGPL-2.1+", want: "LGPL-2.1-or-later"},
		{expr: "LGPL-2.1", want: "LGPL-2.1-only"},
		{expr: "LGPL-2.0+", want: "LGPL-2.0-or-later"},
		{expr: "GPL-1.0+", want: "GPL-1.0-or-later"},
		{expr: "AGPL-3.0", want: "AGPL-3.0-only"},
		{expr: "GFDL-1.3", want: "GFDL-1.3-only"},
		{expr: "gpl-2.0", want: "GPL-2.0-only"},
		{expr: "GPL-2.0 WITH Linux-syscall-note", want: "GPL-2.0-only WITH Linux-syscall-note"},
		{expr: "(GPL-2.0 WITH Linux-syscall-note)", want: "GPL-2.0-only WITH Linux-syscall-note"},
		{expr: "GPL-2.0+ WITH linux-syscall-note", want: "GPL-2.0-or-later WITH Linux-syscall-note"},
		{expr: "GPL-2.0 OR MIT", want: "GPL-2.0-only OR MIT"},
		{expr: "(GPL-2.0+ OR BSD-3-Clause)", want: "GPL-2.0-or-later OR BSD-3-Clause"},
		{expr: "gpl-2.0 or mit", want: "GPL-2.0-only OR MIT"},
		{expr: "GPL-2.0  OR\tMIT", want: "GPL-2.0-only OR MIT"},
		{expr: "((GPL-2.0 WITH Linux-syscall-note) OR BSD-3-Clause)", want: "GPL-2.0-only WITH Linux-syscall-note OR BSD-3-Clause"},
		{expr: "(GPL-2.0 OR MIT) AND LGPL-2.1", want: "(GPL-2.0-only OR MIT) AND LGPL-2.1-only"},
		{expr: "GPL-2.0 OR (MIT AND BSD-2-Clause)", want: "GPL-2.0-only OR MIT AND BSD-2-Clause"},
		{expr: "MIT AND (LGPL-2.1+ OR BSD-3-Clause)", want: "MIT AND (LGPL-2.1-or-later OR BSD-3-Clause)"},
		{expr: "MPL-1.1+", want: "MPL-1.1+"}, // no MPL-1.1-or-later id: "+" is SPDX's own "or later"
		{expr: "LicenseRef-Acme", want: "LicenseRef-Acme"},
		{expr: "LicenseRef-acme-Internal.1", want: "LicenseRef-acme-Internal.1"},
		{expr: "GPL-2.0 OR LicenseRef-Acme", want: "GPL-2.0-only OR LicenseRef-Acme"},
		{expr: "DocumentRef-x:LicenseRef-y", want: "DocumentRef-x:LicenseRef-y"},
		{expr: "", want: ""},
		{expr: "garbage", want: "garbage", wantErr: true},
		{expr: "<SPDX-License> WITH Linux-syscall-note", want: "<SPDX-License> WITH Linux-syscall-note", wantErr: true},
		{expr: "(GPL-2.0", want: "(GPL-2.0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			for range 2 { // the second time from the cache
				got, err := Canonical(tt.expr)
				if got != tt.want || (err != nil) != tt.wantErr {
					t.Fatalf("Canonical(%q) = %q, %v; want %q (error %v)", tt.expr, got, err, tt.want, tt.wantErr)
				}
				if tt.wantErr && !errors.Is(err, ErrBadExpression) {
					t.Fatalf("Canonical(%q): error %v, want an ErrBadExpression", tt.expr, err)
				}
			}
			if tt.wantErr {
				return
			}
			// Canonical forms are fixed points, and keep the expression's class.
			if again, _ := Canonical(tt.want); again != tt.want {
				t.Errorf("Canonical(%q) = %q, not a fixed point", tt.want, again)
			}
			c1, _ := Classify(tt.expr)
			c2, _ := Classify(tt.want)
			if c1 != c2 {
				t.Errorf("class %v of %q, %v of its canonical form", c1, tt.expr, c2)
			}
		})
	}
}

// TestCanonicalEveryID checks that every id of the SPDX list, and every deprecated
// one, has a canonical form that is an id of the current list (or the id with "+"),
// of the same class.
func TestCanonicalEveryID(t *testing.T) {
	ids := append(spdxlicenses.GetLicenses(), spdxlicenses.GetDeprecated()...)
	for _, id := range ids {
		exprs := []string{id}
		if !strings.HasSuffix(id, "+") { // the list's deprecated GPL-2.0+ and the like
			exprs = append(exprs, id+"+")
		}
		for _, expr := range exprs {
			got, err := Canonical(expr)
			if err != nil {
				t.Errorf("Canonical(%q): %v", expr, err)
				continue
			}
			base, _ := strings.CutSuffix(got, "+")
			active, _ := spdxlicenses.IsActiveLicense(base)
			deprecated, _ := spdxlicenses.IsDeprecatedLicense(base)
			if !active && !deprecated {
				t.Errorf("Canonical(%q) = %q, not an id of the list", expr, got)
			}
			// A deprecated id stays only where the list has no current one for it.
			if only, _ := spdxlicenses.IsActiveLicense(base + "-only"); deprecated && only {
				t.Errorf("Canonical(%q) = %q, deprecated for %s-only", expr, got, base)
			}
			c1, _ := Classify(expr)
			c2, _ := Classify(got)
			if c1 != c2 {
				t.Errorf("class %v of %q, %v of its canonical form %q", c1, expr, c2, got)
			}
		}
	}
}
