// Package redistest starts a real Redis Cluster on loopback for tests and
// benchmarks: three primaries and three replicas, each a redis-server process
// of its own, made into one cluster by redis-cli --cluster create.
//
// A test binary usually shares one cluster between its tests:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		redistest.Shutdown()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		c := redistest.ForTest(t) // skips when redis-server is not installed
//		...
//	}
//
// Kill, Restart and WaitHealthy let a test crash a node and watch the cluster
// fail over.
package redistest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// ErrNotInstalled is returned by Start when redis-server or redis-cli is not on
// the PATH.
var ErrNotInstalled = errors.New("redistest: redis-server or redis-cli is not installed (on Debian: apt-get install redis-server)")

const (
	numNodes = 6     // three primaries, three replicas
	numSlots = 16384 // hash slots of a Redis Cluster

	portMin = 20000 // client ports are picked in [portMin, portMax]; the bus port is port+10000
	portMax = 29999
	busGap  = 10000

	startAttempts = 10                     // ports tried per node before giving up
	pollEvery     = 50 * time.Millisecond  // how often the waits look again
	stopGrace     = 2 * time.Second        // between SIGTERM and SIGKILL in Stop
	createTimeout = 60 * time.Second       // at most this long for redis-cli --cluster create
	forTestStart  = 120 * time.Second      // at most this long for ForTest's Start
	queryTimeout  = 2 * time.Second        // per command to a node
	logTailLines  = 20                     // lines of each node's log in ForTest's failure
	logTailBytes  = 64 << 10               // read at most this much of a log's end
	exitWaitLimit = 10 * time.Second       // Kill waits at most this long for the process to go
	readyPing     = 20 * time.Millisecond  // how often a starting node is asked whether it is up
	nodeStartWait = 15 * time.Second       // a node that takes longer to answer has failed
	clientDial    = 500 * time.Millisecond // dial timeout of the per-node clients
)

// Cluster is a running Redis Cluster of six redis-server processes on
// 127.0.0.1. Its methods are safe for concurrent use.
type Cluster struct {
	// Addrs holds the "127.0.0.1:port" address of all six nodes, in the order
	// they were started.
	Addrs []string
	// Dir is where the nodes live: one subdirectory per node, named after its
	// port, holding its redis.conf, nodes.conf and redis.log.
	Dir string

	mu      sync.Mutex
	nodes   []*node // in start order, parallel to Addrs
	stopped bool
}

// node is one redis-server of a cluster.
type node struct {
	addr string
	port int
	dir  string
	conf string // path of its redis.conf

	// Guarded by the cluster's mu.
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
	client *redis.Client // nil while the process is not running
}

// running reports whether n's process has been started and has not exited.
// The caller holds the cluster's mu.
func (n *node) running() bool {
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

// claimed holds the ports this process's clusters use, so that two clusters
// started at once never pick the same one.
var claimed = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// pickPort returns a port p in [portMin, portMax] such that p and p+10000 (the
// cluster bus port) are free on 127.0.0.1 right now, and claims it.
func pickPort() (int, error) {
	claimed.Lock()
	defer claimed.Unlock()
	for range 1000 {
		p := portMin + rand.IntN(portMax-portMin+1)
		if claimed.ports[p] || !portFree(p) || !portFree(p+busGap) {
			continue
		}
		claimed.ports[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("redistest: no free port pair in %d..%d", portMin, portMax)
}

// releasePort gives back a port claimed by pickPort.
func releasePort(p int) {
	claimed.Lock()
	delete(claimed.ports, p)
	claimed.Unlock()
}

// portFree reports whether 127.0.0.1:p can be listened on.
func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// nodeConfig is the redis.conf of a node on port listening in dir. Every other
// setting keeps Redis's default (hash-max-listpack-entries 128 and
// hash-max-listpack-value 64 among them).
func nodeConfig(port int, dir string) string {
	return fmt.Sprintf(`port %d
bind 127.0.0.1
cluster-enabled yes
cluster-config-file nodes.conf
cluster-node-timeout 1000
appendonly no
save ""
dir %s
logfile %s
daemonize no
protected-mode no
`, port, quoteConf(dir), quoteConf(filepath.Join(dir, "redis.log")))
}

// quoteConf quotes s as a redis.conf argument.
func quoteConf(s string) string {
	return strconv.Quote(s)
}

// Start starts six redis-server nodes under dir (one subdirectory each) and
// makes them one cluster of three primaries with a replica each. It returns
// once every node reports cluster_state:ok, every one of the 16384 slots has a
// primary, and every primary has a replica whose link to it is up. On an error
// it stops whatever it started and leaves dir, with the nodes' logs, in place.
func Start(ctx context.Context, dir string) (*Cluster, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, ErrNotInstalled
	}
	if _, err := exec.LookPath("redis-cli"); err != nil {
		return nil, ErrNotInstalled
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir}
	ok := false
	defer func() {
		if !ok {
			c.Stop()
		}
	}()

	// Start the six nodes at once; each finds its own ports.
	type started struct {
		n   *node
		err error
	}
	results := make([]started, numNodes)
	var wg sync.WaitGroup
	for i := range numNodes {
		wg.Go(func() {
			n, err := c.startNode(ctx)
			results[i] = started{n, err}
		})
	}
	wg.Wait()
	var errs []error
	for _, r := range results {
		if r.n != nil {
			c.nodes = append(c.nodes, r.n)
			c.Addrs = append(c.Addrs, r.n.addr)
		}
		if r.err != nil {
			errs = append(errs, r.err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	cctx, cancel := context.WithTimeout(ctx, createTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, "redis-cli", args...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("redistest: redis-cli --cluster create: %v\n%s", err, bytes.TrimSpace(out))
	}
	// redis-cli exits 0 on some failures; its [ERR] lines tell.
	if bytes.Contains(out, []byte("[ERR]")) {
		return nil, fmt.Errorf("redistest: redis-cli --cluster create failed:\n%s", bytes.TrimSpace(out))
	}

	if err := c.waitUntil(ctx, func(ctx context.Context) error {
		if err := c.healthy(ctx); err != nil {
			return err
		}
		return c.replicated(ctx)
	}); err != nil {
		return nil, fmt.Errorf("redistest: cluster did not come up: %w", err)
	}
	ok = true
	return c, nil
}

// errPortInUse is why a node that could not bind its port exited.
var errPortInUse = errors.New("port in use")

// startNode picks a port, writes the node's config under c.Dir and starts
// it, trying other ports when the process exits because its port or bus port
// was taken between pickPort's check and redis-server's bind.
func (c *Cluster) startNode(ctx context.Context) (*node, error) {
	var lastErr error
	for range startAttempts {
		port, err := pickPort()
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(c.Dir, strconv.Itoa(port))
		n := &node{
			addr: "127.0.0.1:" + strconv.Itoa(port),
			port: port,
			dir:  dir,
			conf: filepath.Join(dir, "redis.conf"),
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			releasePort(port)
			return nil, err
		}
		if err := os.WriteFile(n.conf, []byte(nodeConfig(port, dir)), 0o644); err != nil {
			releasePort(port)
			return nil, err
		}
		c.mu.Lock()
		err = c.spawn(n)
		c.mu.Unlock()
		if err == nil {
			err = c.waitReady(ctx, n)
		}
		if err == nil {
			return n, nil
		}
		lastErr = err
		c.mu.Lock()
		c.reap(n, syscall.SIGKILL, 0)
		c.mu.Unlock()
		releasePort(port)
		if !errors.Is(err, errPortInUse) {
			return nil, err
		}
		// Keep the failed attempt's log next to the others for a post-mortem,
		// but out of the way of a node that may get this port later.
		os.Rename(dir, dir+".failed-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	}
	return nil, fmt.Errorf("redistest: no node started after %d attempts: %w", startAttempts, lastErr)
}

// spawn starts n's redis-server. The caller holds c.mu.
func (c *Cluster) spawn(n *node) error {
	if c.stopped {
		return errors.New("redistest: cluster is stopped")
	}
	logf, err := os.OpenFile(filepath.Join(n.dir, "redis.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("redis-server", n.conf)
	cmd.Dir = n.dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setDeathSignal(cmd.SysProcAttr)
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("redistest: starting redis-server for %s: %w", n.addr, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		logf.Close()
		close(exited)
	}()
	n.cmd = cmd
	n.exited = exited
	n.client = newClient(n.addr)
	return nil
}

// setDeathSignal asks the kernel to SIGKILL the child when the test binary
// dies (a panic, a go test -timeout), so that no redis-server outlives it.
// The field exists on Linux only; elsewhere this does nothing.
func setDeathSignal(attr *syscall.SysProcAttr) {
	f := reflect.ValueOf(attr).Elem().FieldByName("Pdeathsig")
	if f.IsValid() && f.CanSet() && f.Type() == reflect.TypeFor[syscall.Signal]() {
		f.Set(reflect.ValueOf(syscall.SIGKILL))
	}
}

// newClient returns a client for administering the node at addr.
func newClient(addr string) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:            addr,
		DialTimeout:     clientDial,
		ReadTimeout:     queryTimeout,
		WriteTimeout:    queryTimeout,
		PoolSize:        4,
		MaxRetries:      -1, // the callers poll; a retry only delays the answer
		DialerRetries:   1,
		DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
}

// waitReady waits until n answers PING and is the process we started (and
// not some other server that took the port), or its process exits.
func (c *Cluster) waitReady(ctx context.Context, n *node) error {
	c.mu.Lock()
	client, exited, pid := n.client, n.exited, n.cmd.Process.Pid
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, nodeStartWait)
	defer cancel()
	t := time.NewTicker(readyPing)
	defer t.Stop()
	var last error
	for {
		// Dial first: a client whose pool has failed to dial PoolSize times
		// only dials again once a second.
		var info string
		conn, err := net.DialTimeout("tcp", n.addr, clientDial)
		if err == nil {
			conn.Close()
			info, err = client.Info(ctx, "server").Result()
		}
		if err == nil {
			got := infoField(info, "process_id")
			if got == strconv.Itoa(pid) {
				return nil
			}
			err = fmt.Errorf("%s is served by process %s, not our %d", n.addr, got, pid)
		}
		last = err
		select {
		case <-exited:
			tail := lastLines(filepath.Join(n.dir, "redis.log"), 5)
			err := fmt.Errorf("redistest: redis-server for %s exited at start: %s", n.addr, tail)
			if strings.Contains(tail, "in use") {
				err = fmt.Errorf("%w: %w", errPortInUse, err)
			}
			return err
		case <-ctx.Done():
			return fmt.Errorf("redistest: redis-server for %s did not answer: %v (last error: %v)", n.addr, ctx.Err(), last)
		case <-t.C:
		}
	}
}

// reap signals n's process with sig, waits up to grace for it to exit, then
// SIGKILLs it and waits. The caller holds c.mu.
func (c *Cluster) reap(n *node, sig syscall.Signal, grace time.Duration) {
	if n.client != nil {
		n.client.Close()
		n.client = nil
	}
	if !n.running() {
		return
	}
	n.cmd.Process.Signal(sig)
	if grace > 0 {
		select {
		case <-n.exited:
			return
		case <-time.After(grace):
		}
	}
	n.cmd.Process.Kill()
	select {
	case <-n.exited:
	case <-time.After(exitWaitLimit):
	}
}

// Stop stops every node: SIGTERM, then SIGKILL for those still running after
// 2 seconds, and waits for the processes to exit. It leaves Dir in place. It
// may be called more than once.
func (c *Cluster) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	c.stopped = true
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Go(func() { c.reap(n, syscall.SIGTERM, stopGrace) })
	}
	wg.Wait()
	for _, n := range c.nodes {
		releasePort(n.port)
	}
}

// node returns the node at addr.
func (c *Cluster) node(addr string) (*node, error) {
	for _, n := range c.nodes {
		if n.addr == addr {
			return n, nil
		}
	}
	return nil, fmt.Errorf("redistest: %s is not a node of this cluster", addr)
}

// Kill SIGKILLs the node at addr, as a crashed machine would stop, and waits
// for its process to exit.
func (c *Cluster) Kill(addr string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, err := c.node(addr)
	if err != nil {
		return err
	}
	if !n.running() {
		return fmt.Errorf("redistest: %s is not running", addr)
	}
	c.reap(n, syscall.SIGKILL, 0)
	if n.running() {
		return fmt.Errorf("redistest: %s did not exit after SIGKILL", addr)
	}
	return nil
}

// Restart starts a node that Kill stopped again, with the same redis.conf and
// nodes.conf, and waits until it answers. It rejoins the cluster by itself, as
// a replica if one of its replicas was promoted meanwhile; WaitHealthy waits
// for that.
func (c *Cluster) Restart(ctx context.Context, addr string) error {
	c.mu.Lock()
	n, err := c.node(addr)
	if err == nil && n.running() {
		err = fmt.Errorf("redistest: %s is running", addr)
	}
	if err == nil {
		err = c.spawn(n)
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if err := c.waitReady(ctx, n); err != nil {
		c.mu.Lock()
		c.reap(n, syscall.SIGKILL, 0)
		c.mu.Unlock()
		return err
	}
	return nil
}

// live returns the running nodes and their clients, in start order.
func (c *Cluster) live() (addrs []string, clients []*redis.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.running() && n.client != nil {
			addrs = append(addrs, n.addr)
			clients = append(clients, n.client)
		}
	}
	return addrs, clients
}

// WaitHealthy waits, looking every 50ms until ctx ends, until every live node
// reports cluster_state:ok and all 16384 slots are served by a live primary,
// every live node agreeing which. It does not wait for replicas to catch up.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	return c.waitUntil(ctx, c.healthy)
}

// waitUntil calls check every 50ms until it returns nil or ctx ends, when it
// returns check's last error.
func (c *Cluster) waitUntil(ctx context.Context, check func(context.Context) error) error {
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// healthy returns nil if every live node reports cluster_state:ok and all
// slots are served by live primaries that every live node agrees on.
func (c *Cluster) healthy(ctx context.Context) error {
	addrs, clients := c.live()
	if len(addrs) == 0 {
		return errors.New("no node is running")
	}
	var want string // the first node's slot map, which the others must match
	for i, cl := range clients {
		info, err := cl.ClusterInfo(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER INFO: %w", addrs[i], err)
		}
		if st := infoField(info, "cluster_state"); st != "ok" {
			return fmt.Errorf("%s: cluster_state:%s", addrs[i], st)
		}
		slots, err := cl.ClusterSlots(ctx).Result()
		if err != nil {
			return fmt.Errorf("%s: CLUSTER SLOTS: %w", addrs[i], err)
		}
		m, err := slotMap(slots, addrs)
		if err != nil {
			return fmt.Errorf("%s: %w", addrs[i], err)
		}
		if i == 0 {
			want = m
		} else if m != want {
			return fmt.Errorf("%s and %s disagree on the slots: %s vs %s", addrs[0], addrs[i], want, m)
		}
	}
	return nil
}

// slotMap checks that slots cover all 16384 slots with primaries among live,
// and returns them in a canonical form ("0-5460@127.0.0.1:20001 ...").
func slotMap(slots []redis.ClusterSlot, live []string) (string, error) {
	slots = slices.Clone(slots)
	sort.Slice(slots, func(i, j int) bool { return slots[i].Start < slots[j].Start })
	var b strings.Builder
	covered := 0
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			return "", fmt.Errorf("slots %d-%d have no primary", s.Start, s.End)
		}
		p := s.Nodes[0].Addr
		if !slices.Contains(live, p) {
			return "", fmt.Errorf("slots %d-%d are served by %s, which is not running", s.Start, s.End, p)
		}
		covered += s.End - s.Start + 1
		fmt.Fprintf(&b, "%d-%d@%s ", s.Start, s.End, p)
	}
	if covered != numSlots {
		return "", fmt.Errorf("%d of %d slots have a primary", covered, numSlots)
	}
	return strings.TrimSpace(b.String()), nil
}

// replicated returns nil if every live primary has a live replica whose link
// to it is up (master_link_status:up).
func (c *Cluster) replicated(ctx context.Context) error {
	addrs, clients := c.live()
	var primaries []string
	linked := map[string]bool{}
	for i, cl := range clients {
		info, err := cl.Info(ctx, "replication").Result()
		if err != nil {
			return fmt.Errorf("%s: INFO replication: %w", addrs[i], err)
		}
		switch role := infoField(info, "role"); role {
		case "master":
			primaries = append(primaries, addrs[i])
		case "slave":
			if infoField(info, "master_link_status") == "up" {
				linked[net.JoinHostPort(infoField(info, "master_host"), infoField(info, "master_port"))] = true
			}
		default:
			return fmt.Errorf("%s: role:%s", addrs[i], role)
		}
	}
	if len(primaries) == 0 {
		return errors.New("no primary")
	}
	for _, p := range primaries {
		if !linked[p] {
			return fmt.Errorf("primary %s has no replica with master_link_status:up", p)
		}
	}
	return nil
}

// infoField returns the value of field in the text of INFO or CLUSTER INFO.
func infoField(info, field string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// Primaries returns the addresses of the nodes that are primaries now, sorted:
// those that CLUSTER NODES, asked of the first live node that answers, flags
// master and not failed, and that serve slots.
func (c *Cluster) Primaries(ctx context.Context) ([]string, error) {
	addrs, clients := c.live()
	var errs []error
	for i, cl := range clients {
		text, err := cl.ClusterNodes(ctx).Result()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: CLUSTER NODES: %w", addrs[i], err))
			continue
		}
		return parsePrimaries(text, addrs[i]), nil
	}
	if len(errs) == 0 {
		return nil, errors.New("redistest: no node is running")
	}
	return nil, fmt.Errorf("redistest: %w", errors.Join(errs...))
}

// parsePrimaries returns the sorted addresses of the serving primaries in the
// CLUSTER NODES text that self answered.
func parsePrimaries(text, self string) []string {
	var out []string
	for line := range strings.Lines(text) {
		// <id> <ip:port@cport[,hostname]> <flags> <master> <ping-sent>
		// <pong-recv> <config-epoch> <link-state> <slot> <slot> ...
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		flags := strings.Split(f[2], ",")
		if !slices.Contains(flags, "master") || slices.Contains(flags, "fail") || len(f) < 9 {
			continue
		}
		addr, _, _ := strings.Cut(f[1], "@")
		if slices.Contains(flags, "myself") {
			addr = self
		}
		out = append(out, addr)
	}
	sort.Strings(out)
	return out
}

// UsedMemory returns the sum of INFO memory's used_memory over the current
// primaries, and over all live nodes.
func (c *Cluster) UsedMemory(ctx context.Context) (primaries, all int64, err error) {
	ps, err := c.Primaries(ctx)
	if err != nil {
		return 0, 0, err
	}
	addrs, clients := c.live()
	for i, cl := range clients {
		info, err := cl.Info(ctx, "memory").Result()
		if err != nil {
			return 0, 0, fmt.Errorf("redistest: %s: INFO memory: %w", addrs[i], err)
		}
		v, err := strconv.ParseInt(infoField(info, "used_memory"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("redistest: %s: used_memory: %w", addrs[i], err)
		}
		all += v
		if slices.Contains(ps, addrs[i]) {
			primaries += v
		}
	}
	return primaries, all, nil
}

// FlushAll runs FLUSHALL on every primary, emptying the cluster for the next
// test; the replicas follow their primaries.
func (c *Cluster) FlushAll(ctx context.Context) error {
	ps, err := c.Primaries(ctx)
	if err != nil {
		return err
	}
	addrs, clients := c.live()
	for _, p := range ps {
		i := slices.Index(addrs, p)
		if i < 0 {
			return fmt.Errorf("redistest: primary %s is not running", p)
		}
		if err := clients[i].FlushAll(ctx).Err(); err != nil {
			return fmt.Errorf("redistest: %s: FLUSHALL: %w", p, err)
		}
	}
	return nil
}

// The cluster ForTest shares between the tests of a binary.
var shared struct {
	sync.Mutex
	c   *Cluster
	dir string
	err error // why it could not start, so later tests fail fast
}

// ForTest returns a cluster shared by every test of the calling test binary,
// starting it under a new temporary directory on first use. Nothing stops it
// when the tests end on their own: the binary's TestMain should call Shutdown
// after m.Run.
//
// If redis-server or redis-cli is missing, ForTest skips the test, unless the
// environment variable CLEANROOM_REQUIRE_REDIS is "1", when it fails it. If
// the cluster does not start, it fails the test with the last lines of every
// node's log.
func ForTest(tb testing.TB) *Cluster {
	tb.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.c != nil {
		return shared.c
	}
	if shared.err != nil {
		tb.Fatalf("redistest: the shared cluster did not start: %v", shared.err)
	}
	_, errServer := exec.LookPath("redis-server")
	_, errCLI := exec.LookPath("redis-cli")
	if errServer != nil || errCLI != nil {
		msg := "redistest: redis-server and redis-cli are needed for a Redis Cluster (apt-get install redis-server)"
		if os.Getenv("CLEANROOM_REQUIRE_REDIS") == "1" {
			tb.Fatal(msg + "; CLEANROOM_REQUIRE_REDIS=1 makes that an error")
		}
		tb.Skip(msg)
	}
	dir, err := os.MkdirTemp("", "redistest-")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), forTestStart)
	defer cancel()
	c, err := Start(ctx, dir)
	if err != nil {
		shared.err = err
		logs := logTails(dir, logTailLines)
		os.RemoveAll(dir)
		tb.Fatalf("redistest: starting a Redis Cluster: %v\n%s", err, logs)
	}
	shared.c, shared.dir = c, dir
	return c
}

// Shutdown stops the cluster ForTest shared, if it started one, and removes
// its directory. A TestMain calls it after m.Run.
func Shutdown() {
	shared.Lock()
	defer shared.Unlock()
	if shared.c != nil {
		shared.c.Stop()
		os.RemoveAll(shared.dir)
		shared.c, shared.dir = nil, ""
	}
}

// logTails returns the last n lines of the log of every node under dir, each
// under a header naming the node, for a failure message.
func logTails(dir string, n int) string {
	logs, _ := filepath.Glob(filepath.Join(dir, "*", "redis.log"))
	sort.Strings(logs)
	var b strings.Builder
	for _, l := range logs {
		fmt.Fprintf(&b, "--- %s\n%s\n", l, lastLines(l, n))
	}
	return b.String()
}

// lastLines returns the last n lines of the file at path, or why it could not
// be read.
func lastLines(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > logTailBytes {
		f.Seek(st.Size()-logTailBytes, 0)
	}
	var lines []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 0, 64<<10), logTailBytes)
	for s.Scan() {
		lines = append(lines, s.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
