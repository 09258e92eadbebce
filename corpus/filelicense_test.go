package corpus

import (
	"strings"
	"testing"

	"cleanroom/corpus/license"
)

func TestFileLicenseSPDX(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{"c++ comment", "// SPDX-License-Identifier: GPL-2.0-only\n#include <x.h>\n", "GPL-2.0-only"},
		{"c comment", "/* SPDX-License-Identifier: GPL-2.0+ OR BSD-2-Clause */\n", "GPL-2.0+ OR BSD-2-Clause"},
		{"hash after shebang", "#!/bin/sh\n# SPDX-License-Identifier: GPL-2.0\n", "GPL-2.0"},
		{"lisp", ";; SPDX-License-Identifier: GPL-3.0-or-later\n", "GPL-3.0-or-later"},
		{"sql", "-- SPDX-License-Identifier: Apache-2.0\n", "Apache-2.0"},
		{"html", "<!-- SPDX-License-Identifier: MPL-2.0 -->\n", "MPL-2.0"},
		{"block star", "/*\n * SPDX-License-Identifier: (GPL-2.0 WITH Linux-syscall-note) OR MIT\n */\n", "(GPL-2.0 WITH Linux-syscall-note) OR MIT"},
		{"rst", ".. SPDX-License-Identifier: GPL-2.0\n", "GPL-2.0"},
		{"asm", "@ SPDX-License-Identifier: GPL-2.0-only\n", "GPL-2.0-only"},
		{"extra spaces", "//   SPDX-License-Identifier:   MIT   \n", "MIT"},
		{"in a string", "printf(\"SPDX-License-Identifier: %s\\n\", id);\n", ""},
		{"too late", strings.Repeat("int x;\n", 30) + "// SPDX-License-Identifier: MIT\n", ""},
		{"line 30", strings.Repeat("int x;\n", 29) + "// SPDX-License-Identifier: MIT\n", "MIT"},
		{"none", "int main(void) { return 0; }\n", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, from := FileLicense([]byte(tt.data))
			wantFrom := FromSPDXLine
			if tt.want == "" {
				wantFrom = ""
			}
			if got != tt.want || from != wantFrom {
				t.Errorf("FileLicense = %q, %q; want %q, %q", got, from, tt.want, wantFrom)
			}
		})
	}
}

func TestFileLicenseNotice(t *testing.T) {
	gpl2 := noticeFrom(t, "GPL-2", "This program is free software")
	gpl3 := noticeFrom(t, "GPL-3", "This program is free software")
	lgpl21 := noticeFrom(t, "LGPL-2.1", "This library is free software")
	apache := noticeFrom(t, "Apache-2.0", "Licensed under the Apache License")
	mpl := noticeFrom(t, "MPL-2.0", "This Source Code Form is subject to")
	bsd := string(licenseText(t, "BSD"))
	bsd2 := strings.Replace(bsd, "3. Neither the name of the University nor the names of its contributors\n   may be used to endorse or promote products derived from this software\n   without specific prior written permission.\n", "", 1)
	if bsd2 == bsd {
		t.Fatalf("BSD text: third clause not found")
	}
	gpl2only := strings.Replace(gpl2, "either version 2 of the License, or\n    (at your option) any later version.", "version 2.", 1)
	if gpl2only == gpl2 {
		t.Fatalf("GPL-2 notice: 'or later' clause not found")
	}
	emacs := strings.Replace(gpl3, "This program is free software", "GNU Emacs is free software", 1)
	agpl := strings.ReplaceAll(gpl3, "GNU General", "GNU Affero General")
	lgplSloppy := strings.Replace(lgpl21, "copy of the GNU Lesser General Public\n    License", "copy of the GNU General Public License", 1)
	lgpl2 := strings.ReplaceAll(strings.ReplaceAll(lgpl21, "Lesser", "Library"), "version 2.1", "version 2")
	mit := "Permission is hereby granted, free of charge, to any person obtaining a copy\nof this software and associated documentation files (the \"Software\"), to deal\n"
	isc := "Permission to use, copy, modify, and/or distribute this software for any\npurpose with or without fee is hereby granted, provided that the above\ncopyright notice and this permission notice appear in all copies.\n"
	tests := []struct {
		name, data, want string
	}{
		{"GPL-2 how-to, C", comment("c", gpl2), "GPL-2.0-or-later"},
		{"GPL-2 only", comment("c", gpl2only), "GPL-2.0-only"},
		{"GPL-3 how-to, shell", "#!/bin/sh\n" + comment("sh", gpl3), "GPL-3.0-or-later"},
		{"Emacs", ";;; simple.el --- basic editing commands  -*- lexical-binding: t -*-\n\n;; Copyright (C) 1985-2022 Free Software Foundation, Inc.\n\n;; This file is part of GNU Emacs.\n\n" + comment("lisp", emacs), "GPL-3.0-or-later"},
		{"LGPL-2.1 how-to", comment("c", lgpl21), "LGPL-2.1-or-later"},
		{"LGPL with a GPL pointer", comment("c", lgplSloppy), "LGPL-2.1-or-later"},
		{"Library GPL 2", comment("c", lgpl2), "LGPL-2.0-or-later"},
		{"AGPL-3", comment("go", agpl), "AGPL-3.0-or-later"},
		{"Apache appendix", comment("go", apache), "Apache-2.0"},
		{"MPL exhibit A", comment("c", mpl), "MPL-2.0"},
		{"BSD", comment("c", bsd), "BSD-3-Clause"},
		{"BSD two clauses", comment("c", bsd2), "BSD-2-Clause"},
		{"MIT", comment("c", mit), "MIT"},
		{"ISC", comment("c", isc), "ISC"},
		{"no version", "/*\n * This file is subject to the terms and conditions of the GNU General Public\n * License.  See the file \"COPYING\" in the main directory of this archive\n * for more details.\n */\n", "GPL-1.0-or-later"},
		{"GPLv2", "/* Licensed under the GPLv2. */\n", "GPL-2.0-only"},
		{"GPL v2 or later", "/* Released under the GPL v2 or later. */\n", "GPL-2.0-or-later"},
		{"version before name", "/* Distributed under version 2 of the GNU General Public License. */\n", "GPL-2.0-only"},
		{"dual, alternatively", comment("c", gpl2+"\n\nAlternatively, this software may be distributed under the terms of\nthe BSD license:\n\n"+bsd), "BSD-3-Clause OR GPL-2.0-or-later"},
		{"dual, no choice said", comment("c", gpl2+"\n\n"+bsd), ""},
		{"dual, MPL", comment("c", "Dual licensed under the GNU General Public License version 2 and the Mozilla Public License version 1.1."), "GPL-2.0-only OR MPL-1.1"},
		{"dual, GPL without a version", comment("c", "This file is dual licensed under the GNU General Public License and the Mozilla Public License, version 1.1."), "GPL-1.0-or-later OR MPL-1.1"},
		{"module license", "MODULE_LICENSE(\"GPL\");\n", ""},
		{"BSD-style pointer", "// Use of this source code is governed by a BSD-style\n// license that can be found in the LICENSE file.\n", ""},
		{"plain code", cCode("plain", 3), ""},
		{"spdx wins", "// SPDX-License-Identifier: MIT\n" + comment("c", gpl2), "MIT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, from := FileLicense([]byte(tt.data))
			wantFrom := FromNotice
			switch {
			case tt.want == "":
				wantFrom = ""
			case strings.HasPrefix(tt.data, "// SPDX"):
				wantFrom = FromSPDXLine
			}
			if got != tt.want || from != wantFrom {
				t.Errorf("FileLicense = %q, %q; want %q, %q\ninput:\n%s", got, from, tt.want, wantFrom, tt.data)
			}
			if got != "" {
				if _, err := license.Classify(got); err != nil {
					t.Errorf("Classify(%q): %v", got, err)
				}
			}
		})
	}
}

func TestFileLicenseWindow(t *testing.T) {
	gpl2 := comment("c", noticeFrom(t, "GPL-2", "This program is free software"))
	late := cCode("pad", 60) // well over 8 KiB
	if len(late) < noticeWindow {
		t.Fatalf("padding too short: %d", len(late))
	}
	if got, _ := FileLicense([]byte(late + gpl2)); got != "" {
		t.Errorf("notice after 8 KiB: FileLicense = %q, want \"\"", got)
	}
}
