package proxy

import (
	"strings"
	"testing"
)

// TestLicenseLabel checks that the matches metric's license label takes canonical
// SPDX expressions only: one series per license, however the source spells it.
func TestLicenseLabel(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"GPL-2.0", "GPL-2.0-only"},
		{"GPL-2.0-only", "GPL-2.0-only"},
		{"(GPL-2.0)", "GPL-2.0-only"},
		{"GPL-2.0+", "GPL-2.0-or-later"},
		{"GPL-2.0-or-later", "GPL-2.0-or-later"},
		{"LGPL-2.1+", "LGPL-2.1-or-later"},
		{"GPL-2.0 WITH Linux-syscall-note", "GPL-2.0-only WITH Linux-syscall-note"},
		{"(GPL-2.0+ OR MIT)", "GPL-2.0-or-later OR MIT"},
		{"LicenseRef-Acme", "LicenseRef-Acme"},
		{"", "unknown"},
		{" ", "unknown"},
		{"not an expression", "other"},
		{strings.Repeat("GPL-2.0 AND ", 10) + "MIT", "other"}, // too long for a label
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			if got := licenseLabel(tt.expr); got != tt.want {
				t.Errorf("licenseLabel(%q) = %q, want %q", tt.expr, got, tt.want)
			}
		})
	}
}
