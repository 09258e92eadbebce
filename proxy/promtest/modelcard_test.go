package promtest

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"cleanroom/index/indextest"
	"cleanroom/proxy"
	"cleanroom/proxy/modelcard/cardtest"
	"cleanroom/proxy/upstream"
)

// TestModelCardChangeAlert serves a model whose card changed license since its
// review, takes the mismatch series from the proxy's /metrics as scraped, and
// has promtool test rules check that CleanroomModelCardChanged fires on them,
// with the proxy's labels.
func TestModelCardChangeAlert(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH: install Debian's prometheus package (make deps does)")
	}
	dir := t.TempDir()
	ixDir := filepath.Join(dir, "ix")
	if _, err := indextest.Build(ixDir, 7, indextest.Repo{Name: "gen", License: "GPL-2.0-only", Files: 1, Funcs: 2}); err != nil {
		t.Fatal(err)
	}
	cache := filepath.Join(dir, "hub")
	cardtest.Write(t, cache, "acme/Llama-3-8B-code", cardtest.C1,
		strings.Replace(cardtest.Llama3FineTune, "license: llama3\n", "license: llama3.1\n", 1))
	policyFile := filepath.Join(dir, "policy.yaml")
	os.WriteFile(policyFile, []byte("models:\n  list:\n    - id: upstream-echo\n      card: acme/Llama-3-8B-code\n"+
		"      card_license: llama3\n      commit: "+cardtest.C1+"\n      license: LicenseRef-Llama-3-Community\n      class: restricted\n"), 0o644)
	up := upstream.New()
	upSrv := httptest.NewServer(up)
	t.Cleanup(func() { up.Close(); upSrv.Close() })
	s, err := proxy.New(proxy.Options{Index: ixDir, Upstream: upSrv.URL, PolicyFile: policyFile, ModelDirs: []string{cache},
		AuditLog: filepath.Join(dir, "audit.jsonl")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(s.Handler())
	t.Cleanup(func() { px.Close(); s.Close() })
	resp, err := http.Get(px.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	exposition, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	series := regexp.MustCompile(`(?m)^cleanroom_model_card_mismatch\{([^}]*)\} 1$`).FindAllStringSubmatch(string(exposition), -1)
	if len(series) != 1 || !strings.Contains(series[0][1], `change="license"`) || !strings.Contains(series[0][1], `model="upstream-echo"`) {
		t.Fatalf("mismatch series at 1: %q; want one, of the license of upstream-echo\n%s", series, grepCleanroom(exposition))
	}
	if !regexp.MustCompile(`(?m)^cleanroom_model_license_info\{.*card_license="llama3.1".*reviewed_license="llama3".*\} 1$`).Match(exposition) {
		t.Errorf("no cleanroom_model_license_info with the card's and the reviewed license:\n%s", grepCleanroom(exposition))
	}
	// The series as Prometheus stores it: the job and instance of the scrape added.
	labels := series[0][1] + `,job="cleanroom",instance="px:8080"`
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string
				Annotations map[string]string
			}
		}
	}
	readYAML(t, alertsFile, &rules)
	description := ""
	for _, r := range rules.Groups[0].Rules {
		if r.Alert == "CleanroomModelCardChanged" {
			description = r.Annotations["description"] // no template in it
		}
	}
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
	abs, _ := filepath.Abs(alertsFile)
	test := "rule_files:\n  - " + abs + "\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n" +
		"      - series: 'cleanroom_model_card_mismatch{" + labels + "}'\n        values: '1x5'\n" +
		"    alert_rule_test:\n      - eval_time: 1m\n        alertname: CleanroomModelCardChanged\n        exp_alerts:\n" +
		"          - exp_labels: {severity: warning, job: cleanroom, model: upstream-echo, change: license}\n" +
		"            exp_annotations:\n" +
		"              summary: " + quote("the license of model upstream-echo's card changed since its license review (cleanroom)") + "\n" +
		"              description: " + quote(description) + "\n"
	file := filepath.Join(dir, "card_alert_test.yml")
	os.WriteFile(file, []byte(test), 0o644)
	out, err := exec.Command(promtool, "test", "rules", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "SUCCESS") {
		t.Errorf("promtool test rules on the scraped series: %v\n%s\n%s", err, out, test)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(exposition))
	if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
