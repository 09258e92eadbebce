package sdk_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cleanroom/index"
	"cleanroom/index/indextest"
	"cleanroom/proxy"
	"cleanroom/proxy/upstream"
)

// tmp holds what the test binary builds once: the indexes and the indexer.
var tmp string

// gen is an index of generated code: files[i] is the GPL-2.0-only file
// src/gen{i}.c of repo "gen".
var gen *corpusIndex

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	var err error
	if tmp, err = os.MkdirTemp("", "cleanroom-sdk-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	if gen, err = buildGenerated(filepath.Join(tmp, "gen")); err != nil {
		fmt.Fprintln(os.Stderr, "building the test index:", err)
		return 1
	}
	defer gen.ix.Close()
	defer closeKernel()
	return m.Run()
}

// A corpusIndex is an index the proxy serves, and a handle of the tests' own on it,
// for checking what clients received.
type corpusIndex struct {
	dir   string
	ix    *index.Index
	files []string
}

func openCorpus(dir string) (*corpusIndex, error) {
	ix, err := index.Open(dir, index.OpenOptions{})
	if err != nil {
		return nil, err
	}
	return &corpusIndex{dir: dir, ix: ix}, nil
}

func buildGenerated(dir string) (*corpusIndex, error) {
	texts, err := indextest.Build(dir, 7, indextest.Repo{Name: "gen", License: "GPL-2.0-only", Files: 8, Funcs: 6})
	if err != nil {
		return nil, err
	}
	ci, err := openCorpus(dir)
	if err != nil {
		return nil, err
	}
	ci.files = texts["gen"]
	return ci, nil
}

// threshold is the length of the shortest run the index finds: no client may
// receive one in block mode.
func (ci *corpusIndex) threshold() int { return ci.ix.Params().Threshold() }

// longestRun returns the longest stretch of text that the index holds exactly, in
// tokens: what a client got of any indexed file.
func (ci *corpusIndex) longestRun(text string) int { return indextest.LongestRun(ci.ix, text) }

// excerpt returns lines [a, b) of text.
func excerpt(text string, a, b int) string {
	ls := strings.SplitAfter(text, "\n")
	return strings.Join(ls[a:min(b, len(ls))], "")
}

// env is the test upstream and a proxy in front of it, serving an index.
type env struct {
	upURL string // the upstream's base URL
	api   string // the proxy's API root, ending in /v1
}

// newEnv starts the upstream, answering replies (newUpstream), and the proxy in mode
// ("block" or "annotate"). seed varies the uneven chunking.
func newEnv(t *testing.T, ci *corpusIndex, mode string, seed int64, replies ...string) *env {
	t.Helper()
	return startEnv(t, ci, mode, newUpstream(seed, replies...))
}

// newUpstream returns a test upstream whose choice i answers replies[i % len].
func newUpstream(seed int64, replies ...string) *upstream.Server {
	up := upstream.New()
	up.Log, up.Seed = quiet, seed
	rs := make([]upstream.Reply, len(replies))
	for i, r := range replies {
		rs[i].Content = r
	}
	up.Script = upstream.FixedScript(rs...)
	return up
}

// startEnv serves up, whose fields are not to change from now on, and starts the
// proxy in front of it.
func startEnv(t *testing.T, ci *corpusIndex, mode string, up *upstream.Server) *env {
	t.Helper()
	upSrv := httptest.NewServer(up)
	t.Cleanup(func() { up.Close(); upSrv.Close() })
	return &env{upURL: upSrv.URL, api: startProxy(t, ci, mode, upSrv.URL)}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startProxy starts a proxy in front of the API at upstreamURL and returns its API
// root.
func startProxy(t *testing.T, ci *corpusIndex, mode, upstreamURL string) string {
	t.Helper()
	s, err := proxy.New(proxy.Options{Index: ci.dir, Upstream: upstreamURL, Mode: mode,
		AuditLog: filepath.Join(t.TempDir(), "audit.jsonl")}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	px := httptest.NewServer(s.Handler())
	t.Cleanup(func() { px.Close(); s.Close() })
	return px.URL + "/v1"
}
