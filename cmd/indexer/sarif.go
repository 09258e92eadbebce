package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"cleanroom/corpus/license"
)

// SARIF 2.1.0 output of `indexer scan --format sarif`, in the subset GitHub code
// scanning reads: one run, a rule per license class, a result per match with the
// scanned file's lines and columns, and partial fingerprints that follow a copied
// passage when it moves within its file.

const sarifSchema = "https://json.schemastore.org/sarif-2.1.0.json"

type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool               sarifTool                `json:"tool"`
	Invocations        []sarifInvocation        `json:"invocations"`
	OriginalURIBaseIDs map[string]sarifLocation `json:"originalUriBaseIds,omitempty"`
	ColumnKind         string                   `json:"columnKind"`
	Results            []sarifResult            `json:"results"`
	Properties         map[string]any           `json:"properties,omitempty"`
}

type sarifTool struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text     string `json:"text"`
	Markdown string `json:"markdown,omitempty"`
}

type sarifRule struct {
	ID                   string         `json:"id"`
	Name                 string         `json:"name"`
	ShortDescription     sarifText      `json:"shortDescription"`
	FullDescription      sarifText      `json:"fullDescription"`
	Help                 sarifText      `json:"help"`
	DefaultConfiguration map[string]any `json:"defaultConfiguration"`
	Properties           map[string]any `json:"properties"`
}

type sarifInvocation struct {
	ExecutionSuccessful bool                `json:"executionSuccessful"`
	Notifications       []sarifNotification `json:"toolExecutionNotifications,omitempty"`
}

type sarifNotification struct {
	Level   string    `json:"level"`
	Message sarifText `json:"message"`
}

type sarifResult struct {
	RuleID              string            `json:"ruleId"`
	RuleIndex           int               `json:"ruleIndex"`
	Level               string            `json:"level"`
	Message             sarifText         `json:"message"`
	Locations           []sarifPlace      `json:"locations"`
	PartialFingerprints map[string]string `json:"partialFingerprints"`
	Properties          map[string]any    `json:"properties"`
}

type sarifPlace struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifLocation `json:"artifactLocation"`
	Region           sarifRegion   `json:"region"`
}

type sarifLocation struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
	EndLine     int `json:"endLine"`
	EndColumn   int `json:"endColumn,omitempty"`
}

// sarifRules are the rules, one per license class, most binding first. A result's
// rule is the class of the source's license expression (license.Classify).
var sarifRules = []struct {
	class       license.Class
	id, name    string
	kind        string // the class, in a result's message
	level       string // SARIF level, and GitHub's problem.severity below
	severity    string
	short, full string
}{
	{license.Strong, "strong-copyleft", "StrongCopyleftCode", "strong copyleft", "error", "error",
		"Code duplicates source under a strong copyleft license",
		"This code duplicates, token for token, a stretch of a file under a strong copyleft license (GPL, AGPL, EUPL, OSL, ...). " +
			"A work that contains it and is distributed (or, under the AGPL, offered over a network) must be released under that license as a whole."},
	{license.Weak, "weak-copyleft", "WeakCopyleftCode", "weak copyleft", "warning", "warning",
		"Code duplicates source under a weak copyleft license",
		"This code duplicates, token for token, a stretch of a file under a weak copyleft license (LGPL, MPL, EPL, CDDL, ...). " +
			"The copied file, or the library it came from, stays under that license: its source must be offered, and changes to it shared."},
	{license.Unknown, "unknown-license", "UnknownLicenseCode", "not classified", "warning", "warning",
		"Code duplicates source under a license that needs review",
		"This code duplicates, token for token, a stretch of an indexed file whose license cleanroom cannot classify " +
			"(a LicenseRef, non-commercial or source-available terms, or no license stated). Its terms need a review."},
	{license.Permissive, "permissive-license", "PermissiveLicenseCode", "permissive", "note", "recommendation",
		"Code duplicates source under a permissive license",
		"This code duplicates, token for token, a stretch of an indexed file under a permissive license. " +
			"Permissive licenses ask for attribution: keep the copyright and license notice with the code."},
}

const sarifHelp = "The result names the source: repository, path, lines, license and a link. Remove the copied code and " +
	"write it anew without reference to the source, or comply with the source's license, or obtain the code under another " +
	"license. Code the company owns or has licensed belongs in the proxy policy's allowlist, or out of the index."

func sarifRuleIndex(expr string) int {
	c, err := license.Classify(expr)
	if err != nil {
		c = license.Unknown
	}
	for i, r := range sarifRules {
		if r.class == c {
			return i
		}
	}
	return 2
}

// writeSARIF writes rep as a SARIF log. Paths of scanned files are made relative to
// wd, the scan's working directory (the repository root in CI), under the uriBaseId
// %SRCROOT%; paths outside it are absolute file: URIs.
func writeSARIF(w io.Writer, rep *scanReport, wd string, index map[string]any) error {
	driver := sarifDriver{Name: "cleanroom", Version: toolVersion()}
	for _, r := range sarifRules {
		driver.Rules = append(driver.Rules, sarifRule{
			ID: r.id, Name: r.name,
			ShortDescription:     sarifText{Text: r.short},
			FullDescription:      sarifText{Text: r.full},
			Help:                 sarifText{Text: r.full + "\n\n" + sarifHelp, Markdown: r.full + "\n\n" + sarifHelp},
			DefaultConfiguration: map[string]any{"level": r.level},
			Properties: map[string]any{"tags": []string{"license", "compliance", r.id}, "precision": "very-high",
				"problem.severity": r.severity},
		})
	}
	run := sarifRun{Tool: sarifTool{Driver: driver}, ColumnKind: "utf16CodeUnits", Results: []sarifResult{},
		Invocations: []sarifInvocation{{ExecutionSuccessful: len(rep.Errors) == 0}}, Properties: map[string]any{"index": index}}
	for _, e := range rep.Errors {
		run.Invocations[0].Notifications = append(run.Invocations[0].Notifications, sarifNotification{Level: "error", Message: sarifText{Text: e}})
	}
	if wd != "" {
		run.OriginalURIBaseIDs = map[string]sarifLocation{"%SRCROOT%": {URI: (&url.URL{Scheme: "file", Path: filepath.ToSlash(wd) + "/"}).String()}}
	}
	for _, m := range rep.Matches {
		run.Results = append(run.Results, sarifResultOf(&m, wd))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(sarifLog{Schema: sarifSchema, Version: "2.1.0", Runs: []sarifRun{run}})
}

func sarifResultOf(m *scanMatch, wd string) sarifResult {
	i := sarifRuleIndex(m.Source.License)
	rule := sarifRules[i]
	s := m.Source
	msg := fmt.Sprintf("Lines %d-%d duplicate %d tokens (%.0f%% of the file) of %s %s lines %d-%d",
		m.StartLine, m.EndLine, m.Tokens, 100*m.Coverage, s.Repo, s.Path, s.StartLine, s.EndLine)
	if s.Version != "" {
		msg += " (version " + s.Version + ")"
	}
	msg += fmt.Sprintf(", licensed %s (%s)", s.License, rule.kind)
	if s.URL != "" {
		msg += ": " + s.URL
	}
	switch {
	case m.AlsoIn == 1:
		msg += ". The same code is in 1 other indexed file"
	case m.AlsoIn > 1:
		msg += fmt.Sprintf(". The same code is in %d other indexed files", m.AlsoIn)
	}
	msg += "."
	loc := sarifArtifact(m.File, wd)
	h := sha256.New()
	for _, part := range []string{rule.id, loc.URI, s.Repo, s.Path, m.text} {
		io.WriteString(h, part)
		h.Write([]byte{0})
	}
	props := map[string]any{"license": s.License, "licenseFrom": s.LicenseFrom, "tokens": m.Tokens,
		"coverage": m.Coverage, "source": s}
	if s.LicenseAsFound != "" {
		props["licenseAsFound"] = s.LicenseAsFound
	}
	return sarifResult{
		RuleID: rule.id, RuleIndex: i, Level: rule.level, Message: sarifText{Text: msg},
		Locations: []sarifPlace{{PhysicalLocation: sarifPhysical{ArtifactLocation: loc,
			Region: sarifRegion{StartLine: m.StartLine, StartColumn: m.startCol, EndLine: m.EndLine, EndColumn: m.endCol}}}},
		PartialFingerprints: map[string]string{"cleanroomMatch/v1": hex.EncodeToString(h.Sum(nil)[:16])},
		Properties:          props,
	}
}

// sarifArtifact returns the location of a scanned file: relative to wd where it is
// inside wd, else an absolute file: URI; standard input is "stdin".
func sarifArtifact(name, wd string) sarifLocation {
	if name == "-" {
		return sarifLocation{URI: "stdin"}
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return sarifLocation{URI: (&url.URL{Path: filepath.ToSlash(name)}).String()}
	}
	if wd != "" {
		if rel, err := filepath.Rel(wd, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return sarifLocation{URI: (&url.URL{Path: filepath.ToSlash(rel)}).String(), URIBaseID: "%SRCROOT%"}
		}
	}
	return sarifLocation{URI: (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()}
}

// toolVersion is the indexer's version, numeric as SARIF consumers compare it:
// its module version (a pseudo-version where the build knew its VCS revision),
// else 0.0.0-devel.
func toolVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			return strings.TrimPrefix(v, "v")
		}
	}
	return "0.0.0-devel"
}

// workingDir is the directory SARIF paths are relative to: the current one.
func workingDir() string {
	wd, err := os.Getwd() // as filepath.Abs has it, so that paths compare
	if err != nil {
		return ""
	}
	return wd
}

// sarifIndexInfo is what the run says of the index it scanned against.
func sarifIndexInfo(build string, created time.Time, threshold int) map[string]any {
	return map[string]any{"build": build, "created": created.UTC().Format(time.RFC3339), "threshold": threshold}
}
