package license

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyKeep(t *testing.T) {
	def := DefaultPolicy()
	custom, err := ParsePolicy([]byte(`# cleanroom policy
index:
  classes: [strong, weak]
  licenses:
    MPL-2.0: skip
    Apache-2.0: index
    GPL-2.0-or-later: skip
  classify:
    LicenseRef-Acme: strong
actions:          # the proxy's section, ignored here
  block: [strong]
`))
	must(t, err)
	tests := []struct {
		policy    *Policy
		expr      string
		keep      bool
		class     Class
		wantError bool
	}{
		{def, "GPL-2.0-only", true, Strong, false},
		{def, "GPL-2.0 WITH Linux-syscall-note", true, Strong, false},
		{def, "LGPL-2.1+", true, Weak, false},
		{def, "MIT", false, Permissive, false},
		{def, "GPL-2.0 OR MIT", false, Permissive, false},
		{def, "GPL-2.0 AND MIT", true, Strong, false},
		{def, "LicenseRef-Acme", false, Unknown, false},
		{def, "GPL-2.0 OR LicenseRef-Acme", false, Unknown, false},
		{def, "", false, Unknown, false},
		{def, "not a license", false, Unknown, true},
		{custom, "MPL-2.0", false, Weak, false},
		{custom, "MPL-2.0 AND GPL-3.0-only", true, Strong, false},
		{custom, "Apache-2.0", true, Permissive, false},
		{custom, "Apache-2.0 OR GPL-3.0-only", true, Permissive, false},
		{custom, "Apache-2.0 OR MIT", false, Permissive, false},
		{custom, "LicenseRef-Acme", true, Strong, false},
		{custom, "GPL-2.0+", false, Strong, false}, // the override matches the deprecated spelling
		{custom, "GPL-2.0-or-later WITH Linux-syscall-note", false, Strong, false},
		{custom, "GPL-2.0-only", true, Strong, false},
	}
	for _, tt := range tests {
		keep, class, err := tt.policy.Keep(tt.expr)
		if (err != nil) != tt.wantError || keep != tt.keep || class != tt.class {
			t.Errorf("Keep(%q) = %v, %v, %v; want %v, %v, error %v (policy %s)", tt.expr, keep, class, err, tt.keep, tt.class, tt.wantError, tt.policy)
		}
	}
}

func TestParsePolicyErrors(t *testing.T) {
	tests := []struct {
		name, yaml, wantInError string
	}{
		{"unknown key", "index:\n  clases: [strong]\n", "clases"},
		{"unknown class", "index:\n  classes: [strong, copyleft]\n", "copyleft"},
		{"bad action", "index:\n  licenses:\n    MIT: maybe\n", "maybe"},
		{"bad id", "index:\n  licenses:\n    Not-A-License: skip\n", "Not-A-License"},
		{"bad classify", "index:\n  classify:\n    LicenseRef-X: copyleft\n", "copyleft"},
		{"not yaml", "index: [\n", "yaml"},
	}
	for _, tt := range tests {
		_, err := ParsePolicy([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.wantInError) {
			t.Errorf("%s: ParsePolicy error %v, want one naming %q", tt.name, err, tt.wantInError)
		}
	}
	for _, ok := range []string{"", "# nothing\n", "index:\n", "proxy:\n  listen: :8080\n", "index:\n  classes: []\n"} {
		if _, err := ParsePolicy([]byte(ok)); err != nil {
			t.Errorf("ParsePolicy(%q): %v", ok, err)
		}
	}
	p, err := ParsePolicy([]byte("index:\n  classes: []\n"))
	must(t, err)
	if keep, _, _ := p.Keep("GPL-3.0-only"); keep {
		t.Errorf("classes: [] still indexes GPL-3.0-only")
	}
}

func TestPolicyFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.yaml")
	must(t, os.WriteFile(file, []byte("index:\n  classes: [strong]\n  licenses:\n    MIT: index\n"), 0o644))
	p := DefaultPolicy()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	p.Flags(fs)
	must(t, fs.Parse([]string{"-policy", file, "-index-license", "AGPL-3.0-only=skip", "-classify", "LicenseRef-Y=weak", "-index-classes", "strong,weak"}))
	for expr, want := range map[string]bool{"MIT": true, "LGPL-2.1-only": true, "AGPL-3.0-only": false, "LicenseRef-Y": true, "BSD-2-Clause": false} {
		if keep, _, err := p.Keep(expr); keep != want || err != nil {
			t.Errorf("Keep(%q) = %v, %v; want %v (policy %s)", expr, keep, err, want, p)
		}
	}
	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	DefaultPolicy().Flags(fs)
	if err := fs.Parse([]string{"-index-license", "MIT"}); err == nil {
		t.Errorf("-index-license MIT: no error")
	}
	if _, err := LoadPolicy(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadPolicy(missing): %v, want ErrNotExist", err)
	}
	lp, err := LoadPolicy(file)
	must(t, err)
	if keep, _, _ := lp.Keep("LGPL-2.1-only"); keep {
		t.Errorf("LoadPolicy(classes: [strong]) still indexes LGPL")
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
