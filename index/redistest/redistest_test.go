package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// start starts a cluster of the test's own under t.TempDir, stopped when the
// test ends, skipping or failing as ForTest does when Redis is missing.
func start(t *testing.T) *Cluster {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), forTestStart)
	defer cancel()
	began := time.Now()
	c, err := Start(ctx, dir)
	if errors.Is(err, ErrNotInstalled) {
		if os.Getenv("CLEANROOM_REQUIRE_REDIS") == "1" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	if err != nil {
		t.Fatalf("Start: %v\n%s", err, logTails(dir, logTailLines))
	}
	t.Cleanup(c.Stop) // runs before t.TempDir's removal
	t.Logf("Start took %v; nodes %v", time.Since(began).Round(time.Millisecond), c.Addrs)
	return c
}

// clusterClient returns a client of the whole cluster, closed when the test ends.
func clusterClient(t *testing.T, c *Cluster) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{
		Addrs:           c.Addrs,
		DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
	t.Cleanup(func() { cc.Close() })
	return cc
}

const numKeys = 1000

func writeKeys(t *testing.T, ctx context.Context, cc *redis.ClusterClient) {
	t.Helper()
	for i := range numKeys {
		if err := cc.Set(ctx, fmt.Sprintf("key:%d", i), fmt.Sprintf("value %d", i), 0).Err(); err != nil {
			t.Fatalf("SET key:%d: %v", i, err)
		}
	}
}

func readKeys(t *testing.T, ctx context.Context, cc *redis.ClusterClient) {
	t.Helper()
	for i := range numKeys {
		got, err := cc.Get(ctx, fmt.Sprintf("key:%d", i)).Result()
		if err != nil {
			t.Fatalf("GET key:%d: %v", i, err)
		}
		if want := fmt.Sprintf("value %d", i); got != want {
			t.Fatalf("GET key:%d = %q, want %q", i, got, want)
		}
	}
}

// readKeysAfterFailover reads the keys back as readKeys does, but retries a
// GET that fails within 15 seconds: go-redis's ClusterClient keeps sending a
// failed primary's slots to it (connection refused) until it reloads its slot
// map, which a connection error does not trigger, so a failed GET calls
// ReloadState (asynchronous) and tries again 50ms later. A wrong value fails
// at once.
func readKeysAfterFailover(t *testing.T, ctx context.Context, cc *redis.ClusterClient) {
	t.Helper()
	began := time.Now()
	deadline := began.Add(15 * time.Second)
	failures := 0
	var firstErr error
	for i := range numKeys {
		for {
			got, err := cc.Get(ctx, fmt.Sprintf("key:%d", i)).Result()
			if err == nil {
				if want := fmt.Sprintf("value %d", i); got != want {
					t.Fatalf("GET key:%d = %q, want %q", i, got, want)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET key:%d: %v (%d failed GETs in %v)", i, err, failures, time.Since(began))
			}
			if firstErr == nil {
				firstErr = err
			}
			failures++
			cc.ReloadState(ctx)
			time.Sleep(pollEvery)
		}
	}
	if failures > 0 {
		t.Logf("read %d keys back after the failover in %v; %d GETs failed first (%v)", numKeys, time.Since(began).Round(time.Millisecond), failures, firstErr)
	}
}

// replicaOf returns, from CLUSTER NODES, the addresses of the replicas of
// the primary at addr.
func replicaOf(t *testing.T, ctx context.Context, c *Cluster, addr string) []string {
	t.Helper()
	_, clients := c.live()
	text, err := clients[0].ClusterNodes(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{} // node id -> address
	type entry struct{ addr, master string }
	var entries []entry
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		a, _, _ := strings.Cut(f[1], "@")
		ids[f[0]] = a
		entries = append(entries, entry{a, f[3]})
	}
	var out []string
	for _, e := range entries {
		if ids[e.master] == addr {
			out = append(out, e.addr)
		}
	}
	return out
}

func TestClusterFailover(t *testing.T) {
	ctx := context.Background()
	c := start(t)
	if len(c.Addrs) != numNodes {
		t.Fatalf("%d nodes, want %d", len(c.Addrs), numNodes)
	}

	before, err := c.Primaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 3 {
		t.Fatalf("primaries %v, want 3", before)
	}
	if err := c.replicated(ctx); err != nil {
		t.Fatalf("after Start: %v", err)
	}

	cc := clusterClient(t, c)
	writeKeys(t, ctx, cc)
	readKeys(t, ctx, cc)

	prim, all, err := c.UsedMemory(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("used_memory: primaries %d, all %d", prim, all)
	if prim <= 0 || prim >= all {
		t.Fatalf("UsedMemory = %d, %d; want 0 < primaries < all", prim, all)
	}

	// Every replica holds the keys of its primary before the crash, so that
	// the failover loses none (replication is asynchronous).
	if err := c.waitUntil(ctx, func(ctx context.Context) error {
		_, clients := c.live()
		var total int64
		for _, cl := range clients {
			n, err := cl.DBSize(ctx).Result()
			if err != nil {
				return err
			}
			total += n
		}
		if total != 2*numKeys {
			return fmt.Errorf("%d keys over all nodes, want %d", total, 2*numKeys)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	victim := before[0]
	heirs := replicaOf(t, ctx, c, victim)
	if len(heirs) != 1 {
		t.Fatalf("replicas of %s: %v, want one", victim, heirs)
	}
	killed := time.Now()
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(victim); err == nil {
		t.Error("second Kill of the same node succeeded")
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.WaitHealthy(wctx); err != nil {
		t.Fatalf("after killing %s: %v\n%s", victim, err, logTails(c.Dir, logTailLines))
	}
	t.Logf("failover: Kill(%s) to WaitHealthy took %v", victim, time.Since(killed).Round(time.Millisecond))

	after, err := c.Primaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(after, victim) {
		t.Fatalf("primaries %v still hold the killed %s", after, victim)
	}
	want := slices.Clone(before)
	want[0] = heirs[0]
	slices.Sort(want)
	if !slices.Equal(after, want) {
		t.Fatalf("primaries %v after the failover, want %v (%s replaced by its replica %s)", after, want, victim, heirs[0])
	}
	readKeysAfterFailover(t, ctx, cc)

	restarted := time.Now()
	if err := c.Restart(ctx, victim); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := c.WaitHealthy(rctx); err != nil {
		t.Fatalf("after restarting %s: %v\n%s", victim, err, logTails(c.Dir, logTailLines))
	}
	t.Logf("rejoin: Restart(%s) to WaitHealthy took %v", victim, time.Since(restarted).Round(time.Millisecond))
	if err := c.waitUntil(rctx, c.replicated); err != nil {
		t.Fatalf("after restarting %s: %v", victim, err)
	}
	t.Logf("rejoin: Restart(%s) to every primary replicated took %v", victim, time.Since(restarted).Round(time.Millisecond))
	again, err := c.Primaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again, after) {
		t.Fatalf("primaries %v after the restart, want %v (the restarted node a replica)", again, after)
	}
	if got := replicaOf(t, ctx, c, heirs[0]); !slices.Equal(got, []string{victim}) {
		t.Fatalf("replicas of %s: %v, want the restarted %s", heirs[0], got, victim)
	}
	readKeys(t, ctx, cc)

	c.Stop()
	c.Stop() // idempotent
	c.mu.Lock()
	for _, n := range c.nodes {
		if n.running() {
			t.Errorf("%s still running after Stop", n.addr)
		}
	}
	c.mu.Unlock()
	if err := c.Restart(ctx, victim); err == nil {
		t.Error("Restart after Stop succeeded")
	}
	if _, err := c.Primaries(ctx); err == nil {
		t.Error("Primaries after Stop succeeded")
	}
}

func TestForTest(t *testing.T) {
	ctx := context.Background()
	c := ForTest(t)
	if c2 := ForTest(t); c2 != c {
		t.Fatal("ForTest started a second cluster")
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	cc := clusterClient(t, c)
	writeKeys(t, ctx, cc)
	if err := c.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := c.Primaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	addrs, clients := c.live()
	for i, cl := range clients {
		if !slices.Contains(ps, addrs[i]) {
			continue
		}
		if n, err := cl.DBSize(ctx).Result(); err != nil || n != 0 {
			t.Errorf("%s: DBSIZE = %d, %v after FlushAll, want 0", addrs[i], n, err)
		}
	}
	if n, err := cc.Exists(ctx, "key:1").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS key:1 = %d, %v after FlushAll", n, err)
	}

	// What the index relies on: a hash of 128 fields of 64-byte values is
	// kept in Redis's compact listpack encoding (Redis's defaults are
	// hash-max-listpack-entries 512, hash-max-listpack-value 64), and one
	// value longer than 64 bytes converts it to a hashtable.
	cfg, err := clients[0].ConfigGet(ctx, "hash-max-listpack-*").Result()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("listpack limits: %v", cfg)
	value := strings.Repeat("v", 64)
	for i := range 128 {
		if err := cc.HSet(ctx, "bucket", fmt.Sprintf("f%03d", i), value).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if enc, err := cc.ObjectEncoding(ctx, "bucket").Result(); err != nil || enc != "listpack" {
		t.Errorf("OBJECT ENCODING of a hash of 128 fields of 64 bytes = %q, %v; want listpack", enc, err)
	}
	if err := cc.HSet(ctx, "bucket", "long", value+"v").Err(); err != nil {
		t.Fatal(err)
	}
	if enc, err := cc.ObjectEncoding(ctx, "bucket").Result(); err != nil || enc != "hashtable" {
		t.Errorf("OBJECT ENCODING after a 65-byte value = %q, %v; want hashtable", enc, err)
	}
	if err := c.FlushAll(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestParsePrimaries(t *testing.T) {
	text := `07c37dfeb235213a872192d90877d0cd55635b91 127.0.0.1:30004@31004 slave e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca 0 1426238317239 4 connected
67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1 127.0.0.1:30002@31002 master - 0 1426238316232 2 connected 5461-10922
292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 127.0.0.1:30003@31003 master - 0 1426238318243 3 connected 10923-16383
6ec23923021cf3ffec47632106199cb7f496ce01 127.0.0.1:30005@31005 master,fail - 1426238316232 0 5 disconnected
824fe116063bc5fcf9f4ffd895bc17aee7731ac3 127.0.0.1:30006@31006 slave 292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f 0 1426238317741 6 connected
e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca :30001@31001,host.example myself,master - 0 0 1 connected 0-5460
`
	got := parsePrimaries(text, "127.0.0.1:30001")
	want := []string{"127.0.0.1:30001", "127.0.0.1:30002", "127.0.0.1:30003"}
	if !slices.Equal(got, want) {
		t.Fatalf("parsePrimaries = %v, want %v", got, want)
	}
}

func TestSlotMap(t *testing.T) {
	node := func(a string) []redis.ClusterNode { return []redis.ClusterNode{{Addr: a}} }
	live := []string{"a:1", "b:2"}
	slots := []redis.ClusterSlot{{Start: 8192, End: 16383, Nodes: node("b:2")}, {Start: 0, End: 8191, Nodes: node("a:1")}}
	m, err := slotMap(slots, live)
	if err != nil || m != "0-8191@a:1 8192-16383@b:2" {
		t.Fatalf("slotMap = %q, %v", m, err)
	}
	if _, err := slotMap(slots[:1], live); err == nil {
		t.Error("half the slots passed")
	}
	if _, err := slotMap(slots, live[:1]); err == nil {
		t.Error("slots of a dead primary passed")
	}
}

func TestInfoField(t *testing.T) {
	info := "# Replication\r\nrole:slave\r\nmaster_host:127.0.0.1\r\nmaster_port:20001\r\nmaster_link_status:up\r\n"
	for field, want := range map[string]string{"role": "slave", "master_port": "20001", "master_link_status": "up", "nope": ""} {
		if got := infoField(info, field); got != want {
			t.Errorf("infoField(%q) = %q, want %q", field, got, want)
		}
	}
}
