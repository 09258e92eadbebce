// Package k8s holds example Kubernetes manifests for the scale-out setup, where the
// index lives in a Redis Cluster that many proxies share (redis-notes.md). This test
// checks them: every document parses and names itself, the proxy's probes, ports and
// scrape annotations agree with its flags, every flag given to the proxy is one it
// registers, and the indexer Jobs split, publish and collect one generation
// consistently.
package k8s

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"cleanroom/proxy"
)

// pendingProxyFlags are flags of the proxy being added now, which the manifests may
// pass before proxy.Options.Flags or cmd/proxy registers them, by kind (bool,
// duration or string). Once registered, the real flag is used and the test says the
// entry can go.
var pendingProxyFlags = map[string]string{}

// indexerFlags are the flags each `indexer` subcommand used here takes (all with a
// value).
var indexerFlags = map[string]map[string]bool{
	"build":   {"index": true, "generation": true, "partition": true, "out": true},
	"publish": {"index": true, "generation": true, "partitions": true, "grace": true},
	"gc":      {"index": true},
}

// apiVersions are the API versions of the kinds the manifests may use.
var apiVersions = map[string]string{
	"ConfigMap":           "v1",
	"Secret":              "v1",
	"Service":             "v1",
	"Deployment":          "apps/v1",
	"PodDisruptionBudget": "policy/v1",
	"Job":                 "batch/v1",
	"CronJob":             "batch/v1",
}

type manifest struct {
	where string // file#document
	obj   object
}

type object struct {
	APIVersion string            `yaml:"apiVersion"`
	Kind       string            `yaml:"kind"`
	Metadata   objectMeta        `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	Spec       yaml.Node         `yaml:"spec"`
}

type objectMeta struct {
	Name        string            `yaml:"name"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type deploymentSpec struct {
	Replicas *int          `yaml:"replicas"`
	Selector labelSelector `yaml:"selector"`
	Template podTemplate   `yaml:"template"`
}

type jobSpec struct {
	CompletionMode       string      `yaml:"completionMode"`
	Completions          *int        `yaml:"completions"`
	Parallelism          *int        `yaml:"parallelism"`
	BackoffLimitPerIndex *int        `yaml:"backoffLimitPerIndex"`
	Suspend              *bool       `yaml:"suspend"`
	Template             podTemplate `yaml:"template"`
}

type cronJobSpec struct {
	Schedule    string `yaml:"schedule"`
	JobTemplate struct {
		Spec jobSpec `yaml:"spec"`
	} `yaml:"jobTemplate"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Port       int    `yaml:"port"`
		TargetPort string `yaml:"targetPort"` // a number or a port's name
	} `yaml:"ports"`
}

type pdbSpec struct {
	MinAvailable *int          `yaml:"minAvailable"`
	Selector     labelSelector `yaml:"selector"`
}

type podTemplate struct {
	Metadata objectMeta `yaml:"metadata"`
	Spec     podSpec    `yaml:"spec"`
}

type podSpec struct {
	RestartPolicy   string          `yaml:"restartPolicy"`
	SecurityContext securityContext `yaml:"securityContext"`
	Containers      []container     `yaml:"containers"`
	Volumes         []volume        `yaml:"volumes"`
}

type securityContext struct {
	RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
	ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
	AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
}

type container struct {
	Name    string   `yaml:"name"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Env     []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
			ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe  *probe          `yaml:"readinessProbe"`
	LivenessProbe   *probe          `yaml:"livenessProbe"`
	SecurityContext securityContext `yaml:"securityContext"`
	VolumeMounts    []volumeMount   `yaml:"volumeMounts"`
}

type keyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or a port's name
	} `yaml:"httpGet"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	SubPath   string `yaml:"subPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type volume struct {
	Name      string `yaml:"name"`
	ConfigMap *struct {
		Name string `yaml:"name"`
	} `yaml:"configMap"`
	EmptyDir              *struct{} `yaml:"emptyDir"`
	PersistentVolumeClaim *struct {
		ClaimName string `yaml:"claimName"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"persistentVolumeClaim"`
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// load reads every YAML document of the directory, split on `---` lines; documents
// that hold nothing but comments are skipped.
func load(t *testing.T) []manifest {
	t.Helper()
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, err := filepath.Glob(pat)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		t.Fatal("no manifests")
	}
	var out []manifest
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for i, part := range docSep.Split(string(b), -1) {
			where := fmt.Sprintf("%s#%d", f, i+1)
			var node yaml.Node
			if err := yaml.Unmarshal([]byte(part), &node); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			if node.Kind == 0 || (node.Kind == yaml.DocumentNode && len(node.Content) == 0) {
				continue
			}
			if node.Kind != yaml.DocumentNode || node.Content[0].Kind != yaml.MappingNode {
				t.Errorf("%s: not a mapping", where)
				continue
			}
			var obj object
			if err := node.Decode(&obj); err != nil {
				t.Errorf("%s: %v", where, err)
				continue
			}
			out = append(out, manifest{where, obj})
			n++
		}
		if n == 0 {
			t.Errorf("%s: no documents", f)
		}
	}
	return out
}

func decodeSpec(t *testing.T, m manifest, v any) {
	t.Helper()
	if err := m.obj.Spec.Decode(v); err != nil {
		t.Fatalf("%s (%s %s): spec: %v", m.where, m.obj.Kind, m.obj.Metadata.Name, err)
	}
}

func TestDocuments(t *testing.T) {
	seen := map[string]string{}
	for _, m := range load(t) {
		o := m.obj
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			t.Errorf("%s: want apiVersion, kind and metadata.name, have %q, %q, %q", m.where, o.APIVersion, o.Kind, o.Metadata.Name)
			continue
		}
		if want, ok := apiVersions[o.Kind]; !ok {
			t.Errorf("%s: kind %s: add its apiVersion to the test's table", m.where, o.Kind)
		} else if o.APIVersion != want {
			t.Errorf("%s: %s is %s, not %s", m.where, o.Kind, want, o.APIVersion)
		}
		key := o.Kind + "/" + o.Metadata.Name
		if prev, ok := seen[key]; ok {
			t.Errorf("%s: %s is defined in %s too", m.where, key, prev)
		}
		seen[key] = m.where
	}
}

// A workload is a container of the manifests with the pod it runs in.
type workload struct {
	where   string
	kind    string // Deployment, Job, CronJob
	name    string
	pod     podTemplate
	c       container
	program string   // base name of command[0]
	argv    []string // the program's arguments
}

func workloads(t *testing.T, ms []manifest) []workload {
	t.Helper()
	var out []workload
	add := func(m manifest, pod podTemplate) {
		for _, c := range pod.Spec.Containers {
			w := workload{where: m.where, kind: m.obj.Kind, name: m.obj.Metadata.Name, pod: pod, c: c}
			if len(c.Command) == 0 {
				t.Errorf("%s: container %s: name the program in command, so its flags can be checked", m.where, c.Name)
				continue
			}
			w.program = path.Base(c.Command[0])
			w.argv = append(append([]string(nil), c.Command[1:]...), c.Args...)
			out = append(out, w)
		}
	}
	for _, m := range ms {
		switch m.obj.Kind {
		case "Deployment":
			var s deploymentSpec
			decodeSpec(t, m, &s)
			add(m, s.Template)
		case "Job":
			var s jobSpec
			decodeSpec(t, m, &s)
			add(m, s.Template)
		case "CronJob":
			var s cronJobSpec
			decodeSpec(t, m, &s)
			add(m, s.JobTemplate.Spec.Template)
		}
	}
	return out
}

// port resolves a probe's or Service's port, a number or the name of one of the
// container's ports.
func (w workload) port(p string) int {
	if n, err := strconv.Atoi(p); err == nil {
		return n
	}
	for _, cp := range w.c.Ports {
		if cp.Name == p {
			return cp.ContainerPort
		}
	}
	return -1
}

func (w workload) hasPort(n int) bool {
	for _, cp := range w.c.Ports {
		if cp.ContainerPort == n {
			return true
		}
	}
	return false
}

func (w workload) volume(name string) *volume {
	for i := range w.pod.Spec.Volumes {
		if w.pod.Spec.Volumes[i].Name == name {
			return &w.pod.Spec.Volumes[i]
		}
	}
	return nil
}

// mountOf returns the mount a file or directory lies in, the deepest one.
func (w workload) mountOf(p string) *volumeMount {
	var best *volumeMount
	for i, m := range w.c.VolumeMounts {
		mp := strings.TrimSuffix(m.MountPath, "/")
		if (p == mp || strings.HasPrefix(p, mp+"/")) && (best == nil || len(mp) > len(best.MountPath)) {
			best = &w.c.VolumeMounts[i]
		}
	}
	return best
}

func (w workload) env(name string) (value string, from *keyRef, secret bool, ok bool) {
	for _, e := range w.c.Env {
		if e.Name != name {
			continue
		}
		if e.ValueFrom != nil {
			if e.ValueFrom.SecretKeyRef != nil {
				return "", e.ValueFrom.SecretKeyRef, true, true
			}
			return "", e.ValueFrom.ConfigMapKeyRef, false, true
		}
		return e.Value, nil, false, true
	}
	return "", nil, false, false
}

// checkCommon checks what every container of cleanroom's must do: run as non-root
// on a read-only root filesystem, take the Redis password from a Secret, and
// reference only environment variables it has in $(...).
func checkCommon(t *testing.T, w workload, indexed bool) {
	t.Helper()
	sc, psc := w.c.SecurityContext, w.pod.Spec.SecurityContext
	if !(sc.RunAsNonRoot != nil && *sc.RunAsNonRoot || sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot) {
		t.Errorf("%s: %s: runAsNonRoot is not set", w.where, w.c.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: %s: readOnlyRootFilesystem is not set", w.where, w.c.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: %s: allowPrivilegeEscalation is not false", w.where, w.c.Name)
	}
	if _, ref, secret, ok := w.env("CLEANROOM_REDIS_PASSWORD"); !ok || !secret || ref.Name == "" || ref.Key == "" {
		t.Errorf("%s: %s: CLEANROOM_REDIS_PASSWORD must come from a Secret", w.where, w.c.Name)
	}
	// Kubernetes leaves a $(NAME) it cannot resolve as it is: the program would get
	// the literal text.
	for _, a := range append(append([]string(nil), w.c.Command...), w.c.Args...) {
		for _, ref := range envRef.FindAllStringSubmatch(a, -1) {
			if _, _, _, ok := w.env(ref[1]); ok || indexed && ref[1] == "JOB_COMPLETION_INDEX" {
				continue
			}
			t.Errorf("%s: %s: %s refers to $(%s), which the container's env does not set", w.where, w.c.Name, a, ref[1])
		}
	}
}

var envRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// checkIndexURL checks an --index value: a Redis Cluster, its seeds HOST:PORT, and
// no password (pod args are readable by anyone who can read the pod).
func checkIndexURL(t *testing.T, w workload, v string) {
	t.Helper()
	scheme, rest, ok := strings.Cut(v, "://")
	if !ok || scheme != "redis" && scheme != "rediss" {
		t.Errorf("%s: --index=%q: want a redis:// or rediss:// URL", w.where, v)
		return
	}
	hosts, _, _ := strings.Cut(rest, "/")
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		if strings.Contains(hosts[:at], ":") {
			t.Errorf("%s: --index holds a password: take it from the Secret (CLEANROOM_REDIS_PASSWORD)", w.where)
		}
		hosts = hosts[at+1:]
	}
	for _, h := range strings.Split(hosts, ",") {
		if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
			t.Errorf("%s: --index seed %q is not HOST:PORT", w.where, h)
		}
	}
}

// cmdProxyFlags reads the flags cmd/proxy registers itself, beside
// proxy.Options.Flags (its package main cannot be imported), from its source: the
// calls of the methods of its flag.NewFlagSet, by kind.
func cmdProxyFlags(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("../../cmd/proxy/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("cmd/proxy's source: %v", err)
	}
	out := map[string]string{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		sets := map[string]bool{} // variables holding a flag.NewFlagSet
		ast.Inspect(file, func(n ast.Node) bool {
			if as, ok := n.(*ast.AssignStmt); ok && len(as.Lhs) == 1 && len(as.Rhs) == 1 {
				if id, ok := as.Lhs[0].(*ast.Ident); ok && isCall(as.Rhs[0], "flag", "NewFlagSet") {
					sets[id.Name] = true
				}
			}
			return true
		})
		ast.Inspect(file, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); !ok || !sets[id.Name] {
				return true
			}
			method := sel.Sel.Name
			i := 0 // the flag's name: first argument, second of the ...Var methods
			if strings.HasSuffix(method, "Var") {
				i = 1
			}
			if len(call.Args) <= i {
				return true
			}
			lit, ok := call.Args[i].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			name, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			switch strings.TrimSuffix(method, "Var") {
			case "Bool", "BoolFunc":
				out[name] = "bool"
			case "Duration":
				out[name] = "duration"
			case "Func", "Text", "", "String", "Int", "Int64", "Uint", "Uint64", "Float64":
				out[name] = "string"
			}
			return true
		})
	}
	return out
}

func isCall(e ast.Expr, pkg, fn string) bool {
	call, ok := e.(*ast.CallExpr)
	if !ok {
		return false
	}
	sel, ok := call.Fun.(*ast.SelectorExpr)
	if !ok {
		return false
	}
	id, ok := sel.X.(*ast.Ident)
	return ok && id.Name == pkg && sel.Sel.Name == fn
}

// proxyFlagSet is the proxy's command line: proxy.Options.Flags, cmd/proxy's own
// flags and the pending ones.
func proxyFlagSet(t *testing.T) *flag.FlagSet {
	t.Helper()
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	(&proxy.Options{}).Flags(fs)
	register := func(name, kind string) {
		switch kind {
		case "bool":
			fs.Bool(name, false, "")
		case "duration":
			fs.Duration(name, 0, "")
		default:
			fs.String(name, "", "")
		}
	}
	own := cmdProxyFlags(t)
	if len(own) == 0 {
		t.Log("found no flags of cmd/proxy's own: checking against proxy.Options.Flags alone")
	}
	for name, kind := range own {
		if fs.Lookup(name) == nil {
			register(name, kind)
		}
	}
	for name, kind := range pendingProxyFlags {
		if fs.Lookup(name) != nil {
			t.Logf("--%s is registered now: it can leave pendingProxyFlags", name)
			continue
		}
		register(name, kind)
	}
	return fs
}

func labelsMatch(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestProxy(t *testing.T) {
	ms := load(t)
	var ws []workload
	for _, w := range workloads(t, ms) {
		if w.program == "proxy" {
			ws = append(ws, w)
		}
	}
	if len(ws) != 1 || ws[0].kind != "Deployment" {
		t.Fatalf("want one proxy container, in a Deployment; have %d", len(ws))
	}
	w := ws[0]
	checkCommon(t, w, false)

	// Every flag is the proxy's, and its value parses as the proxy would parse it.
	fs := proxyFlagSet(t)
	if err := fs.Parse(w.argv); err != nil {
		t.Fatalf("%s: proxy %s: %v", w.where, strings.Join(w.argv, " "), err)
	}
	if fs.NArg() > 0 {
		t.Errorf("%s: proxy takes no arguments; it would ignore %q and the flags after it", w.where, fs.Args())
	}
	set := map[string]string{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = f.Value.String() })
	for _, name := range []string{"index", "upstream", "admin-listen", "policy"} {
		if set[name] == "" {
			t.Errorf("%s: proxy is not given --%s", w.where, name)
		}
	}
	checkIndexURL(t, w, set["index"])
	if set["fail-open"] == "true" {
		t.Errorf("%s: the example must stay fail-closed", w.where)
	}
	envs := map[string]bool{"CLEANROOM_REDIS_PASSWORD": true}
	fs.VisitAll(func(f *flag.Flag) {
		envs["CLEANROOM_"+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))] = true
	})
	for _, e := range w.c.Env {
		if strings.HasPrefix(e.Name, "CLEANROOM_") && !envs[e.Name] {
			t.Errorf("%s: env %s is no flag's", w.where, e.Name)
		}
	}

	// Ports: the listeners are container ports; the probes and the scrape
	// annotations point at the admin listener.
	listenPort := addrPort(t, w, "listen", fs.Lookup("listen").Value.String())
	adminPort := addrPort(t, w, "admin-listen", set["admin-listen"])
	if listenPort == adminPort {
		t.Fatalf("%s: --listen and --admin-listen are the same port", w.where)
	}
	for _, p := range []int{listenPort, adminPort} {
		if !w.hasPort(p) {
			t.Errorf("%s: port %d is not among the container's ports", w.where, p)
		}
	}
	for _, pr := range []struct {
		name string
		p    *probe
		path string
	}{{"readinessProbe", w.c.ReadinessProbe, "/readyz"}, {"livenessProbe", w.c.LivenessProbe, "/healthz"}} {
		if pr.p == nil || pr.p.HTTPGet == nil {
			t.Errorf("%s: no %s httpGet", w.where, pr.name)
			continue
		}
		if pr.p.HTTPGet.Path != pr.path || w.port(pr.p.HTTPGet.Port) != adminPort {
			t.Errorf("%s: %s gets %s on port %s; want %s on the admin port %d", w.where, pr.name,
				pr.p.HTTPGet.Path, pr.p.HTTPGet.Port, pr.path, adminPort)
		}
	}
	ann := w.pod.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != strconv.Itoa(adminPort) || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("%s: scrape annotations %q, %q, %q; want \"true\", the admin port %d, /metrics", w.where,
			ann["prometheus.io/scrape"], ann["prometheus.io/port"], ann["prometheus.io/path"], adminPort)
	}

	// The policy file is a ConfigMap's key, mounted where --policy says, and the
	// proxy accepts it.
	checkPolicy(t, ms, w, set["policy"], fs.Lookup("mode").Value.String())

	// The Deployment, its Service and its PodDisruptionBudget select the same pods.
	labels := w.pod.Metadata.Labels
	var replicas int
	for _, m := range ms {
		if m.obj.Kind == "Deployment" && m.obj.Metadata.Name == w.name {
			var s deploymentSpec
			decodeSpec(t, m, &s)
			if !labelsMatch(s.Selector.MatchLabels, labels) {
				t.Errorf("%s: the selector does not match the pods' labels", m.where)
			}
			if s.Replicas == nil || *s.Replicas < 2 {
				t.Errorf("%s: want replicas, at least 2", m.where)
			} else {
				replicas = *s.Replicas
			}
		}
	}
	services, pdbs := 0, 0
	for _, m := range ms {
		switch m.obj.Kind {
		case "Service":
			var s serviceSpec
			decodeSpec(t, m, &s)
			if !labelsMatch(s.Selector, labels) {
				continue
			}
			services++
			for _, p := range s.Ports {
				switch w.port(p.TargetPort) {
				case adminPort:
					t.Errorf("%s: the Service exposes the admin port (POST /admin/reload, /metrics)", m.where)
				case listenPort:
				default:
					t.Errorf("%s: port %d targets %s, not the proxy's --listen port %d", m.where, p.Port, p.TargetPort, listenPort)
				}
			}
		case "PodDisruptionBudget":
			var s pdbSpec
			decodeSpec(t, m, &s)
			if !labelsMatch(s.Selector.MatchLabels, labels) {
				continue
			}
			pdbs++
			if s.MinAvailable == nil || *s.MinAvailable < 1 || replicas > 0 && *s.MinAvailable >= replicas {
				t.Errorf("%s: minAvailable must be at least 1 and below the %d replicas, or no node could be drained", m.where, replicas)
			}
		}
	}
	if services != 1 || pdbs != 1 {
		t.Errorf("want one Service and one PodDisruptionBudget selecting the proxy's pods; have %d and %d", services, pdbs)
	}
}

// addrPort returns the port of a listen address, which must be a port of every
// interface (the kubelet probes the pod's IP).
func addrPort(t *testing.T, w workload, flagName, addr string) int {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	n, err2 := strconv.Atoi(port)
	if err != nil || err2 != nil || n <= 0 {
		t.Fatalf("%s: --%s=%q: want [HOST]:PORT", w.where, flagName, addr)
	}
	if host != "" && host != "0.0.0.0" && host != "::" {
		t.Errorf("%s: --%s=%q listens on %s only: probes and the Service reach the pod's IP", w.where, flagName, addr, host)
	}
	return n
}

func checkPolicy(t *testing.T, ms []manifest, w workload, file, mode string) {
	t.Helper()
	mount := w.mountOf(file)
	if mount == nil {
		t.Errorf("%s: --policy=%s is on no volume", w.where, file)
		return
	}
	v := w.volume(mount.Name)
	if v == nil || v.ConfigMap == nil {
		t.Errorf("%s: --policy=%s: volume %s is not a ConfigMap", w.where, file, mount.Name)
		return
	}
	key := strings.TrimPrefix(file, strings.TrimSuffix(mount.MountPath, "/")+"/")
	if mount.SubPath != "" {
		key = mount.SubPath
	}
	var data string
	found := false
	for _, m := range ms {
		if m.obj.Kind == "ConfigMap" && m.obj.Metadata.Name == v.ConfigMap.Name {
			data, found = m.obj.Data[key]
		}
	}
	if !found {
		t.Errorf("%s: --policy=%s: no ConfigMap %s with the key %s", w.where, file, v.ConfigMap.Name, key)
		return
	}
	def, err := proxy.ParseAction(mode)
	if err != nil {
		t.Fatalf("%s: --mode: %v", w.where, err)
	}
	if _, err := proxy.ParsePolicy([]byte(data), def); err != nil {
		t.Errorf("ConfigMap %s: %s: %v", v.ConfigMap.Name, key, err)
	}
}

// indexerArgs parses `indexer SUBCOMMAND [flags] [SOURCE...]`: each flag is
// --name=value or --name value, and none may follow a SOURCE, which would make it a
// source too.
func indexerArgs(argv []string) (sub string, flags map[string]string, sources []string, err error) {
	if len(argv) == 0 {
		return "", nil, nil, fmt.Errorf("no subcommand")
	}
	sub, flags = argv[0], map[string]string{}
	allowed, ok := indexerFlags[sub]
	if !ok {
		return sub, nil, nil, fmt.Errorf("subcommand %q is none of build, publish, gc", sub)
	}
	for i := 1; i < len(argv); i++ {
		a := argv[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			sources = append(sources, a)
			continue
		}
		if len(sources) > 0 {
			return sub, nil, nil, fmt.Errorf("flag %s after a SOURCE would be read as a source", a)
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !allowed[name] {
			return sub, nil, nil, fmt.Errorf("%s takes no flag --%s", sub, name)
		}
		if !hasValue {
			if i+1 == len(argv) {
				return sub, nil, nil, fmt.Errorf("--%s needs a value", name)
			}
			i++
			value = argv[i]
		}
		if _, dup := flags[name]; dup {
			return sub, nil, nil, fmt.Errorf("--%s given twice", name)
		}
		flags[name] = value
	}
	return sub, flags, sources, nil
}

// An indexerRun is an indexer container with its parsed command line.
type indexerRun struct {
	w       workload
	flags   map[string]string
	sources []string
}

var partitionArg = regexp.MustCompile(`^\$\(JOB_COMPLETION_INDEX\)/([0-9]+)$`)

func TestIndexer(t *testing.T) {
	ms := load(t)
	jobs := map[string]jobSpec{}
	for _, m := range ms {
		if m.obj.Kind == "Job" {
			var s jobSpec
			decodeSpec(t, m, &s)
			jobs[m.obj.Metadata.Name] = s
		}
	}
	bySub := map[string][]indexerRun{}
	indexURLs := map[string]string{} // --index value: where
	for _, w := range workloads(t, ms) {
		switch w.program {
		case "proxy":
			fs := proxyFlagSet(t)
			if fs.Parse(w.argv) == nil {
				indexURLs[fs.Lookup("index").Value.String()] = w.where
			}
			continue
		case "indexer":
		default:
			continue
		}
		sub, flags, sources, err := indexerArgs(w.argv)
		if err != nil {
			t.Errorf("%s: indexer %s: %v", w.where, strings.Join(w.argv, " "), err)
			continue
		}
		js := jobs[w.name]
		checkCommon(t, w, w.kind == "Job" && js.CompletionMode == "Indexed")
		checkIndexURL(t, w, flags["index"])
		indexURLs[flags["index"]] = w.where
		bySub[sub] = append(bySub[sub], indexerRun{w, flags, sources})
	}
	// The proxies read the index where the indexer writes it.
	if len(indexURLs) != 1 {
		t.Errorf("the manifests name different indexes: %v", indexURLs)
	}
	if len(bySub["build"]) != 1 || len(bySub["publish"]) != 1 || len(bySub["gc"]) != 1 {
		t.Fatalf("want one build, one publish and one gc; have %d, %d, %d",
			len(bySub["build"]), len(bySub["publish"]), len(bySub["gc"]))
	}

	// The build: an Indexed Job whose workers each build their slice.
	b := bySub["build"][0]
	js := jobs[b.w.name]
	if b.w.kind != "Job" || js.CompletionMode != "Indexed" {
		t.Fatalf("%s: the build must be a Job with completionMode Indexed", b.w.where)
	}
	if js.Completions == nil || js.Parallelism == nil || *js.Completions != *js.Parallelism {
		t.Fatalf("%s: want completions = parallelism: one worker per slice, all at once", b.w.where)
	}
	parts := *js.Completions
	if js.BackoffLimitPerIndex == nil || b.w.pod.Spec.RestartPolicy != "Never" {
		t.Errorf("%s: want backoffLimitPerIndex, with restartPolicy Never", b.w.where)
	}
	m := partitionArg.FindStringSubmatch(b.flags["partition"])
	if m == nil || m[1] != strconv.Itoa(parts) {
		t.Errorf("%s: --partition=%q; want $(JOB_COMPLETION_INDEX)/%d, the number of completions", b.w.where, b.flags["partition"], parts)
	}
	if mnt := b.w.mountOf(b.flags["out"]); b.flags["out"] == "" || mnt == nil || b.w.volume(mnt.Name) == nil || b.w.volume(mnt.Name).EmptyDir == nil {
		t.Errorf("%s: --out=%q is not on an emptyDir volume", b.w.where, b.flags["out"])
	}
	if len(b.sources) == 0 {
		t.Errorf("%s: no SOURCE", b.w.where)
	}
	for _, src := range b.sources {
		if _, p, ok := strings.Cut(src, "="); ok {
			src = p
		}
		mnt := b.w.mountOf(src)
		if mnt == nil {
			t.Errorf("%s: SOURCE %s is on no volume", b.w.where, src)
			continue
		}
		if v := b.w.volume(mnt.Name); v == nil || v.PersistentVolumeClaim == nil || !v.PersistentVolumeClaim.ReadOnly || !mnt.ReadOnly {
			t.Errorf("%s: SOURCE %s: want a PersistentVolumeClaim mounted read-only", b.w.where, src)
		}
	}

	// The publish: the same generation, every slice, and not before the build is done.
	p := bySub["publish"][0]
	if p.w.kind != "Job" {
		t.Errorf("%s: publish must be a Job", p.w.where)
	} else if s := jobs[p.w.name]; s.Suspend == nil || !*s.Suspend {
		t.Errorf("%s: the publish Job must be created suspended, to be resumed once the build completed", p.w.where)
	}
	if p.flags["partitions"] != strconv.Itoa(parts) {
		t.Errorf("%s: --partitions=%q; the build has %d", p.w.where, p.flags["partitions"], parts)
	}
	if d, err := time.ParseDuration(p.flags["grace"]); err != nil || d <= 0 {
		t.Errorf("%s: --grace=%q is not a duration", p.w.where, p.flags["grace"])
	}
	if generation(t, b) != generation(t, p) {
		t.Errorf("%s and %s: build and publish name different generations: %s, %s", b.w.where, p.w.where, generation(t, b), generation(t, p))
	}

	// The collection of retired generations runs on a schedule.
	if g := bySub["gc"][0]; g.w.kind != "CronJob" {
		t.Errorf("%s: gc should be a CronJob", g.w.where)
	}
}

// generation says where a run's --generation comes from: the literal value, or the
// source of the environment variable it names.
func generation(t *testing.T, r indexerRun) string {
	t.Helper()
	g := r.flags["generation"]
	if g == "" {
		t.Errorf("%s: no --generation", r.w.where)
		return ""
	}
	m := envRef.FindStringSubmatch(g)
	if m == nil || m[0] != g {
		return g
	}
	value, ref, secret, ok := r.w.env(m[1])
	switch {
	case !ok:
		return g // checkCommon reports it
	case ref != nil:
		return fmt.Sprintf("%s from %v %s/%s", g, map[bool]string{true: "Secret", false: "ConfigMap"}[secret], ref.Name, ref.Key)
	default:
		return fmt.Sprintf("%s = %q", g, value)
	}
}
