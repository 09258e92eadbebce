package promtest

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"cleanroom/proxy"
	"cleanroom/proxy/upstream"
)

// The operations kit in deploy/: Prometheus alerting rules with their unit tests,
// and a Grafana dashboard.
const (
	alertsFile     = "../../deploy/prometheus/alerts.yml"
	alertsTestFile = "../../deploy/prometheus/alerts_test.yml"
	dashboardFile  = "../../deploy/grafana/cleanroom.json"
)

// TestAlertRules checks the alerting rules with promtool and runs their unit tests.
func TestAlertRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH: install Debian's prometheus package (make deps does)")
	}
	for _, args := range [][]string{{"check", "rules", filepath.Base(alertsFile)}, {"test", "rules", filepath.Base(alertsTestFile)}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Dir(alertsFile)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "SUCCESS") {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		}
	}
}

// TestEveryAlertIsTested checks that alerts_test.yml has, for every alert, a case
// where it fires and one where it does not.
func TestEveryAlertIsTested(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert string }
		}
	}
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	readYAML(t, alertsFile, &rules)
	readYAML(t, alertsTestFile, &tests)
	fires, silent := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname]++
			} else {
				silent[a.Alertname]++
			}
		}
	}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if fires[r.Alert] == 0 || silent[r.Alert] == 0 {
				t.Errorf("alert %s: %d test cases where it fires, %d where it does not; want at least one of each", r.Alert, fires[r.Alert], silent[r.Alert])
			}
		}
	}
	if n < 6 || len(tests.RuleFiles) != 1 || tests.RuleFiles[0] != filepath.Base(alertsFile) {
		t.Errorf("%d alerts, rule files %v", n, tests.RuleFiles)
	}
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		GridPos *struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// A dashQuery is one PromQL query of the dashboard, with where it comes from.
type dashQuery struct{ where, expr string }

// readDashboard reads the dashboard, checks its shape, and returns its queries: each
// panel target's expr, and the metric selector of each query variable.
func readDashboard(t *testing.T) []dashQuery {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("the dashboard has no uid or title")
	}
	vars := map[string]string{}
	var qs []dashQuery
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if json.Unmarshal(v.Query, &q) != nil {
			json.Unmarshal(v.Query, &q.Query)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(SELECTOR, LABEL)", v.Name, q.Query)
			continue
		}
		qs = append(qs, dashQuery{"variable " + v.Name, m[1]})
	}
	if vars["datasource"] != "datasource" || vars["job"] != "query" || vars["instance"] != "query" {
		t.Errorf("variables %v: want a datasource variable, and job and instance queries", vars)
	}
	ids := map[int]bool{}
	var titles []string
	for _, p := range d.Panels {
		if ids[p.ID] || p.GridPos == nil || p.GridPos.W == 0 {
			t.Errorf("panel %q: duplicate id %d or no gridPos", p.Title, p.ID)
		}
		ids[p.ID] = true
		if p.Type == "row" {
			continue
		}
		titles = append(titles, p.Title)
		if p.Datasource == nil || p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, tg := range p.Targets {
			qs = append(qs, dashQuery{fmt.Sprintf("panel %q target %d", p.Title, i), tg.Expr})
		}
	}
	// What the issue asks the dashboard to show.
	for _, want := range []string{"requests by outcome", "by license and action", "blocked share", "scan time", "holdback",
		"upstream errors", "index size", "index age", "by model license", "fail-open"} {
		found := false
		for _, title := range titles {
			found = found || strings.Contains(strings.ToLower(title), want)
		}
		if !found {
			t.Errorf("no panel about %q among %q", want, titles)
		}
	}
	return qs
}

// grafanaVars are the values the test gives the dashboard's variables: Grafana's
// own and the dashboard's job and instance, as regexes that match all.
var grafanaVars = strings.NewReplacer("${__rate_interval}", "30s", "$__rate_interval", "30s", "${__interval}", "5s",
	"$__interval", "5s", "${__range}", "5m", "$__range", "5m", "${job}", ".+", "$job", ".+", "${instance}", ".+", "$instance", ".+")

// TestDashboardQueries has a real Prometheus scrape the proxy while it serves a bit
// of every kind of traffic, with the alerting rules loaded, and evaluates every
// query of the dashboard, instant and over a range: a query error fails the test (an
// empty result does not), and so does a metric the proxy does not expose, which
// would leave a panel empty for ever. Every alerting rule must evaluate without error.
func TestDashboardQueries(t *testing.T) {
	if _, err := os.Stat(prometheusBin); err != nil {
		t.Skipf("no Prometheus server at %s: install Debian's prometheus package (make deps does)", prometheusBin)
	}
	qs := readDashboard(t)
	e := newEnv(t)
	p := startPrometheus(t, e.px.Listener.Addr().String(), alertsFile)
	p.waitFor(t, `cleanroom_ready`, 1)
	ty := e.send(t, e.calls())
	p.waitFor(t, `sum(cleanroom_requests_total)`, float64(ty.requests))
	time.Sleep(2 * time.Second) // a few more scrapes, so that rates have two samples

	names := map[string]bool{}
	metricName := regexp.MustCompile(`\bcleanroom_[a-z_]+`)
	for _, q := range qs {
		expr := grafanaVars.Replace(q.expr)
		if strings.Contains(expr, "$") {
			t.Errorf("%s: a variable the test does not know: %s", q.where, expr)
			continue
		}
		for _, n := range metricName.FindAllString(expr, -1) {
			names[n] = true
		}
		now := time.Now()
		if err := p.call("query", url.Values{"query": {expr}}); err != nil {
			t.Errorf("%s: %s\n%v", q.where, expr, err)
		}
		if err := p.call("query_range", url.Values{"query": {expr}, "start": {unix(now.Add(-time.Minute))},
			"end": {unix(now)}, "step": {"1"}}); err != nil {
			t.Errorf("%s (range): %s\n%v", q.where, expr, err)
		}
	}
	exposed := string(e.metrics(t))
	for n := range names {
		if !regexp.MustCompile(`(?m)^` + n + `[{ ]`).MatchString(exposed) {
			t.Errorf("the dashboard queries %s, which the proxy does not expose", n)
		}
	}
	if !t.Failed() {
		t.Logf("%d dashboard queries evaluated, instant and over a range, without error; metrics: %v", len(qs), sortedKeys(names))
	}

	// Every rule has been evaluated, and healthily.
	deadline := time.Now().Add(15 * time.Second)
	for {
		rules := p.rules(t)
		bad := []string{}
		for _, r := range rules {
			if r.Health != "ok" || r.LastError != "" {
				bad = append(bad, fmt.Sprintf("%s: health %q %s", r.Name, r.Health, r.LastError))
			}
		}
		if len(rules) >= 6 && len(bad) == 0 {
			t.Logf("%d alerting rules evaluate without error against the scraped proxy", len(rules))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerting rules after 15s: %d, not healthy: %v", len(rules), bad)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFailOpenAlertFires starts the proxy with --fail-open and no index, and
// checks that a real Prometheus with the alerting rules fires CleanroomFailOpen.
func TestFailOpenAlertFires(t *testing.T) {
	if _, err := os.Stat(prometheusBin); err != nil {
		t.Skipf("no Prometheus server at %s: install Debian's prometheus package (make deps does)", prometheusBin)
	}
	dir := t.TempDir()
	up := upstream.New()
	upSrv := httptest.NewServer(up)
	t.Cleanup(func() { up.Close(); upSrv.Close() })
	s, err := proxy.New(proxy.Options{Index: filepath.Join(dir, "no-index"), Upstream: upSrv.URL, FailOpen: true,
		AuditLog: filepath.Join(dir, "audit.jsonl")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(s.Handler())
	t.Cleanup(func() { px.Close(); s.Close() })
	p := startPrometheus(t, px.Listener.Addr().String(), alertsFile)
	deadline := time.Now().Add(20 * time.Second)
	for {
		states := p.alerts(t)
		if states["CleanroomFailOpen"] == "firing" && states["CleanroomIndexNotLoaded"] == "pending" {
			t.Logf("alerts with --fail-open and no index: %v", states)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("alerts after 20s: %v; want CleanroomFailOpen firing and CleanroomIndexNotLoaded pending", states)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func unix(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }

func sortedKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// call calls an endpoint of Prometheus' query API and returns the error it
// answers, if any.
func (p *prometheus) call(endpoint string, params url.Values) error {
	resp, err := http.PostForm(p.api+"/api/v1/"+endpoint, params)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Status    string
		ErrorType string
		Error     string
		Warnings  []string
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("status %d: %v", resp.StatusCode, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s", r.ErrorType, r.Error)
	}
	if len(r.Warnings) > 0 {
		return fmt.Errorf("warnings: %v", r.Warnings)
	}
	return nil
}

type ruleState struct {
	Name, Health, LastError, State string
}

// rules returns the alerting rules Prometheus evaluates.
func (p *prometheus) rules(t *testing.T) []ruleState {
	t.Helper()
	var r struct {
		Data struct {
			Groups []struct{ Rules []ruleState }
		}
	}
	p.get(t, "/api/v1/rules?type=alert", &r)
	var out []ruleState
	for _, g := range r.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// alerts returns the state of each active alert by name.
func (p *prometheus) alerts(t *testing.T) map[string]string {
	t.Helper()
	var r struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string
				State  string
			}
		}
	}
	p.get(t, "/api/v1/alerts", &r)
	out := map[string]string{}
	for _, a := range r.Data.Alerts {
		out[a.Labels["alertname"]] = a.State
	}
	return out
}

func (p *prometheus) get(t *testing.T, path string, v any) {
	t.Helper()
	resp, err := http.Get(p.api + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}
