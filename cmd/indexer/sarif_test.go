package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom/fingerprint"
	"cleanroom/fingerprint/gencode"
)

// sarifOut is the part of a SARIF log the tests read.
type sarifOut struct {
	Schema  string `json:"$schema"`
	Version string `json:"version"`
	Runs    []struct {
		Tool struct {
			Driver struct {
				Name    string `json:"name"`
				Version string `json:"version"`
				Rules   []struct {
					ID                   string `json:"id"`
					DefaultConfiguration struct {
						Level string `json:"level"`
					} `json:"defaultConfiguration"`
				} `json:"rules"`
			} `json:"driver"`
		} `json:"tool"`
		Invocations []struct {
			ExecutionSuccessful bool `json:"executionSuccessful"`
			Notifications       []struct {
				Level   string `json:"level"`
				Message struct{ Text string }
			} `json:"toolExecutionNotifications"`
		} `json:"invocations"`
		Results []sarifResultOut `json:"results"`
	} `json:"runs"`
}

type sarifResultOut struct {
	RuleID    string `json:"ruleId"`
	RuleIndex int    `json:"ruleIndex"`
	Level     string `json:"level"`
	Message   struct {
		Text string `json:"text"`
	} `json:"message"`
	Locations []struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI       string `json:"uri"`
				URIBaseID string `json:"uriBaseId"`
			} `json:"artifactLocation"`
			Region struct {
				StartLine, StartColumn, EndLine, EndColumn int
			} `json:"region"`
		} `json:"physicalLocation"`
	} `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
}

// sarifFixture is an index of a GPL-2.0 project with one LGPL file, and a
// working directory with copies of its code to scan.
type sarifFixture struct {
	ix, wd, logs string
	gpl, lesser  string // excerpts of a GPL and of the LGPL file, comments stripped
	gplSrc       string // the GPL excerpt's source path
	first, last  int    // the GPL excerpt's lines in its source
	outside      string // a file with the LGPL excerpt outside wd
	sarifOutputs []string
}

func newSARIFFixture(t *testing.T) *sarifFixture {
	t.Helper()
	root := t.TempDir()
	g := gencode.New(23)
	proj := filepath.Join(root, "proj")
	writeFile(t, filepath.Join(proj, "COPYING"), commonLicense(t, "GPL-2"))
	var gplFiles []string
	for i := 0; i < 3; i++ {
		gplFiles = append(gplFiles, g.CFile("/* Part of proj. */\n", 6))
		writeFile(t, filepath.Join(proj, fmt.Sprintf("src/f%d.c", i)), gplFiles[i])
	}
	lesser := g.CFile("// SPDX-License-Identifier: LGPL-2.1-or-later\n", 6)
	writeFile(t, filepath.Join(proj, "src/lesser.c"), lesser)
	f := &sarifFixture{ix: filepath.Join(root, "ix"), wd: filepath.Join(root, "work"), logs: filepath.Join(root, "logs"), gplSrc: "src/f1.c"}
	os.Mkdir(f.logs, 0o755)
	if r := run(t, "", "build", "--out", f.ix, proj); r.code != 0 {
		t.Fatalf("build: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	f.gpl, f.first, f.last = excerpt(t, fingerprint.C, gplFiles[1], 8, 47)
	f.lesser, _, _ = excerpt(t, fingerprint.C, lesser, 5, 40)
	f.outside = filepath.Join(root, "elsewhere", "copy.c")
	writeFile(t, f.outside, f.lesser)
	return f
}

// scanSARIF runs `indexer scan --format sarif` in dir and returns its log and exit
// status.
func (f *sarifFixture) scanSARIF(t *testing.T, dir, stdin string, args ...string) (*sarifOut, []byte, int) {
	t.Helper()
	cmd := exec.Command(indexerBin, append([]string{"scan", "--index", f.ix, "--format", "sarif"}, args...)...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var log sarifOut
	if err := json.Unmarshal(out, &log); err != nil {
		t.Fatalf("scan %v: exit %d, not JSON: %v\n%s\n%s", args, code, err, out, stderr.String())
	}
	if log.Version != "2.1.0" || len(log.Runs) != 1 || log.Runs[0].Tool.Driver.Name != "cleanroom" || !strings.Contains(log.Schema, "sarif-2.1.0") {
		t.Fatalf("scan %v: not a SARIF 2.1.0 log of one cleanroom run:\n%s", args, out)
	}
	p := filepath.Join(f.logs, fmt.Sprintf("scan%d.sarif", len(f.sarifOutputs)+1)) // kept until the validator has read it
	os.WriteFile(p, out, 0o644)
	f.sarifOutputs = append(f.sarifOutputs, p)
	return &log, out, code
}

func TestScanSARIF(t *testing.T) {
	f := newSARIFFixture(t)
	writeFile(t, filepath.Join(f.wd, "src/copied.c"), "#include <stdio.h>\n\n"+f.gpl)
	writeFile(t, filepath.Join(f.wd, "lib/lesser.c"), f.lesser)
	writeFile(t, filepath.Join(f.wd, "lib/own.c"), "int answer(void)\n{\n\treturn 42;\n}\n")
	writeFile(t, filepath.Join(f.wd, ".git/objects/copy.c"), f.gpl) // not scanned: a dot-directory
	writeFile(t, filepath.Join(f.wd, "notes.txt"), f.gpl)           // not scanned: not source

	log, raw, code := f.scanSARIF(t, f.wd, "", "src/copied.c", "lib", f.outside)
	run := log.Runs[0]
	rules := run.Tool.Driver.Rules
	if len(rules) != 4 || rules[0].ID != "strong-copyleft" || rules[0].DefaultConfiguration.Level != "error" ||
		rules[1].ID != "weak-copyleft" || rules[1].DefaultConfiguration.Level != "warning" {
		t.Errorf("rules %+v, want strong-copyleft (error), weak-copyleft (warning), ...", rules)
	}
	if code != 1 || len(run.Results) != 3 || !run.Invocations[0].ExecutionSuccessful {
		t.Fatalf("exit %d, %d results; want 1 and 3 (the GPL copy, the LGPL copy in lib/ and outside):\n%s", code, len(run.Results), raw)
	}
	byURI := map[string]sarifResultOut{}
	for _, r := range run.Results {
		if rules[r.RuleIndex].ID != r.RuleID || len(r.Locations) != 1 || len(r.PartialFingerprints) == 0 {
			t.Errorf("result %+v: rule index, location or fingerprints wrong", r)
			continue
		}
		byURI[r.Locations[0].PhysicalLocation.ArtifactLocation.URI] = r
	}
	gpl, ok := byURI["src/copied.c"]
	loc := gpl.Locations[0].PhysicalLocation
	if !ok || gpl.RuleID != "strong-copyleft" || gpl.Level != "error" || loc.ArtifactLocation.URIBaseID != "%SRCROOT%" ||
		loc.Region.StartLine != 3 || loc.Region.StartColumn != 3 || loc.Region.EndLine < 30 || loc.Region.EndColumn < 2 {
		t.Errorf("the GPL copy: %+v, want strong-copyleft, error, src/copied.c under %%SRCROOT%% from line 3, column 3 (excerpt indents by 2)", gpl)
	}
	for _, want := range []string{"proj", f.gplSrc, fmt.Sprintf("lines %d-%d", f.first, f.last), "GPL-2.0", "strong copyleft"} {
		if !strings.Contains(gpl.Message.Text, want) {
			t.Errorf("the GPL copy's message %q does not say %q", gpl.Message.Text, want)
		}
	}
	if r, ok := byURI["lib/lesser.c"]; !ok || r.RuleID != "weak-copyleft" || r.Level != "warning" || !strings.Contains(r.Message.Text, "LGPL-2.1-or-later") {
		t.Errorf("the LGPL copy in lib/: %+v, want weak-copyleft, warning, naming LGPL-2.1-or-later", r)
	}
	if r, ok := byURI["file://"+filepath.ToSlash(f.outside)]; !ok || r.Locations[0].PhysicalLocation.ArtifactLocation.URIBaseID != "" {
		t.Errorf("a file outside the working directory: want an absolute file: URI; results by URI: %v", keys(byURI))
	}

	t.Run("fingerprints follow the code", func(t *testing.T) {
		writeFile(t, filepath.Join(f.wd, "src/copied.c"), "#include <stdio.h>\n\n/* moved down */\n\n\n"+f.gpl)
		log, _, _ := f.scanSARIF(t, f.wd, "", "src/copied.c")
		moved := log.Runs[0].Results[0]
		if moved.Locations[0].PhysicalLocation.Region.StartLine != 6 || fmt.Sprint(moved.PartialFingerprints) != fmt.Sprint(gpl.PartialFingerprints) {
			t.Errorf("moved 3 lines down: line %d, fingerprints %v; want line 6 and the same fingerprints %v",
				moved.Locations[0].PhysicalLocation.Region.StartLine, moved.PartialFingerprints, gpl.PartialFingerprints)
		}
	})
	t.Run("files from standard input, as from git diff --name-only", func(t *testing.T) {
		log, _, code := f.scanSARIF(t, f.wd, "lib/own.c\nsrc/copied.c\n\n", "--files-from", "-")
		if code != 1 || len(log.Runs[0].Results) != 1 {
			t.Errorf("exit %d, %d results; want 1 and 1", code, len(log.Runs[0].Results))
		}
		log, _, code = f.scanSARIF(t, f.wd, "", "--files-from", "-")
		if code != 0 || len(log.Runs[0].Results) != 0 || !log.Runs[0].Invocations[0].ExecutionSuccessful {
			t.Errorf("no files: exit %d, %+v; want 0 and an empty run", code, log.Runs[0])
		}
	})
	t.Run("clean code", func(t *testing.T) {
		if log, _, code := f.scanSARIF(t, f.wd, "", "lib/own.c"); code != 0 || len(log.Runs[0].Results) != 0 {
			t.Errorf("exit %d, results %+v; want 0 and none", code, log.Runs[0].Results)
		}
	})
	t.Run("a file that cannot be read", func(t *testing.T) {
		log, _, code := f.scanSARIF(t, f.wd, "", "src/copied.c", "missing.c")
		inv := log.Runs[0].Invocations[0]
		if code != 2 || inv.ExecutionSuccessful || len(inv.Notifications) != 1 || !strings.Contains(inv.Notifications[0].Message.Text, "missing.c") ||
			len(log.Runs[0].Results) != 1 {
			t.Errorf("exit %d, invocation %+v, %d results; want 2, unsuccessful with a notification naming missing.c, and the match", code, inv, len(log.Runs[0].Results))
		}
	})
	validateSARIF(t, f.sarifOutputs)
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// sarifMultitool is Microsoft's SARIF multitool, as make deps installs it from the
// npm package @microsoft/sarif-multitool-linux (testdata/sarif-tool/package.json).
const sarifMultitool = "testdata/sarif-tool/node_modules/@microsoft/sarif-multitool-linux/Sarif.Multitool"

// allowedSARIFWarnings are the validator's warnings the indexer's output may have,
// with why.
var allowedSARIFWarnings = map[string]string{
	// cleanroom has no public home page for tool.driver.informationUri to name.
	"SARIF2005 informationUri": "informationUri",
}

// validateSARIF runs `Sarif.Multitool validate` on each log: any error, and any
// warning not in allowedSARIFWarnings, fails the test. The validator exits 0
// whatever it finds, so its own SARIF output is read; and it is first shown a log
// with a known error, so that a validator that checks nothing cannot pass.
func validateSARIF(t *testing.T, logs []string) {
	t.Helper()
	tool, err := filepath.Abs(sarifMultitool)
	if _, serr := os.Stat(tool); err != nil || serr != nil {
		t.Skipf("SARIF validation skipped: %s is not installed (make deps installs it with npm ci in cmd/indexer/testdata/sarif-tool)", sarifMultitool)
	}
	broken := filepath.Join(t.TempDir(), "broken.sarif")
	os.WriteFile(broken, []byte(`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"x","version":"1"}},"results":[{"ruleId":"r",`+
		`"message":{"text":"m"},"locations":[{"physicalLocation":{"artifactLocation":{"uri":"a.c"},"region":{"startLine":0}}}]}]}]}`), 0o644)
	if errs, _ := runValidator(t, tool, broken); len(errs) == 0 {
		t.Fatalf("the validator found no error in a log with startLine 0: it does not validate")
	}
	for _, l := range logs {
		errs, warnings := runValidator(t, tool, l)
		for _, w := range warnings {
			allowed := false
			for key, has := range allowedSARIFWarnings {
				allowed = allowed || (strings.HasPrefix(w, strings.Fields(key)[0]+":") && strings.Contains(w, has))
			}
			if !allowed {
				errs = append(errs, "warning "+w)
			}
		}
		if len(errs) > 0 {
			raw, _ := os.ReadFile(l)
			t.Errorf("SARIF validator on %s:\n%s\nthe log:\n%s", l, strings.Join(errs, "\n"), raw)
		} else {
			t.Logf("SARIF validator: %s is valid SARIF 2.1.0 (%d allowed warnings: %s)", filepath.Base(l), len(warnings), strings.Join(warnings, "; "))
		}
	}
}

// runValidator validates one log and returns the validator's errors and warnings,
// each as "RULE: message".
func runValidator(t *testing.T, tool, log string) (errs, warnings []string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "validation.sarif")
	cmd := exec.Command(tool, "validate", "-o", out, log)
	// The multitool is a .NET program: without ICU it must be told to do without.
	cmd.Env = append(os.Environ(), "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=1", "DOTNET_CLI_TELEMETRY_OPTOUT=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s validate: %v\n%s", tool, err, b)
	}
	var v struct {
		Runs []struct {
			Tool struct {
				Driver struct {
					Rules []struct {
						ID                   string
						DefaultConfiguration struct{ Level string }
						MessageStrings       map[string]struct{ Text string }
					}
				}
			}
			Invocations []struct{ ExecutionSuccessful bool }
			Results     []struct {
				RuleID  string
				Level   string
				Message struct {
					Text      string
					ID        string
					Arguments []string
				}
			}
		}
	}
	b, err := os.ReadFile(out)
	if err == nil {
		err = json.Unmarshal(b, &v)
	}
	if err != nil || len(v.Runs) != 1 || len(v.Runs[0].Invocations) == 0 || !v.Runs[0].Invocations[0].ExecutionSuccessful {
		t.Fatalf("the validator's own log %s: %v\n%s", out, err, b)
	}
	level, texts := map[string]string{}, map[string]map[string]struct{ Text string }{}
	for _, r := range v.Runs[0].Tool.Driver.Rules {
		level[r.ID], texts[r.ID] = r.DefaultConfiguration.Level, r.MessageStrings
	}
	for _, r := range v.Runs[0].Results {
		l := r.Level
		if l == "" {
			l = level[r.RuleID]
		}
		text := r.Message.Text
		if text == "" { // a message string of the rule, with arguments {0}, {1}, ...
			text = texts[r.RuleID][r.Message.ID].Text
			for i, a := range r.Message.Arguments {
				text = strings.ReplaceAll(text, fmt.Sprintf("{%d}", i), a)
			}
		}
		msg := r.RuleID + ": " + text
		switch l {
		case "error":
			errs = append(errs, msg)
		case "note", "none":
		default: // "warning", SARIF's default level
			warnings = append(warnings, msg)
		}
	}
	return errs, warnings
}
