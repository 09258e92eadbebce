package index

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"cleanroom/corpus/license"
)

// mergeScript adds postings to fingerprints of one bucket: KEYS are the bucket and
// its overflow hash, ARGV pairs of field and records. A record already there is
// not added again, so a partition whose upload is retried after a crash counts
// each posting once. A value that would not fit the listpack moves to the overflow
// hash, with 0xff and the count left in the bucket.
var mergeScript = redis.NewScript(`
local cap = ` + strconv.Itoa(maxOverflow*recordSize) + `
local inline = ` + strconv.Itoa(inlineRecords*recordSize) + `
local function has(all, r)
  local i = 1
  while true do
    local j = string.find(all, r, i, true)
    if not j then return false end
    if (j - 1) % 7 == 0 then return true end
    i = j + 1
  end
end
for i = 1, #ARGV, 2 do
  local f, add = ARGV[i], ARGV[i + 1]
  local cur = redis.call('HGET', KEYS[1], f)
  local all, n
  if not cur then
    all, n = '', 0
  elseif #cur % 7 == 0 then
    all, n = cur, #cur / 7
  else
    all = redis.call('HGET', KEYS[2], f) or ''
    n = struct.unpack('>I4', cur, 2)
  end
  local grew = false
  for j = 1, #add, 7 do
    local r = string.sub(add, j, j + 6)
    if not has(all, r) then
      n = n + 1
      grew = true
      if #all < cap then all = all .. r end
    end
  end
  if grew then
    if #all <= inline and #all == n * 7 then
      redis.call('HSET', KEYS[1], f, all)
    else
      redis.call('HSET', KEYS[1], f, '\255' .. struct.pack('>I4', n))
      redis.call('HSET', KEYS[2], f, all)
    end
  end
end
return 0
`)

// switchScript points the index at a new generation and retires the old one
// (ARGV: the generation, the time the old one may be deleted), in one step.
var switchScript = redis.NewScript(`
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if old and old ~= ARGV[1] then
  redis.call('ZADD', KEYS[2], ARGV[2], old)
end
return old
`)

var genName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// CheckGeneration checks a generation name: letters, digits, '.', '_' and '-'.
func CheckGeneration(gen string) error {
	if !genName.MatchString(gen) {
		return fmt.Errorf("index: generation %q: use 1 to 64 letters, digits, '.', '_' or '-'", gen)
	}
	return nil
}

// PushStats tells what a push wrote.
type PushStats struct {
	Docs, Postings int64
	DocBytes       int64
	Buckets        int
	Bits           int
	Elapsed        time.Duration
	// Complete says the partition was complete already: nothing was pushed (a
	// worker retried after it finished).
	Complete bool
}

// Push uploads the local index ix as partition part of parts of generation gen.
// Partitions may be pushed at once, from different machines; the first fixes the
// generation's layout, which the others must fit. A partition is complete once
// its marker is written, last; Publish serves the generation once every partition
// is. Pushing a partition again after a failure is safe; pushing a complete one
// does nothing (a batch scheduler may run a worker again after it finished). The rename-robust
// fingerprints and the k-gram filter are not pushed: they are for an index that
// fits on one machine.
func (r *Redis) Push(ctx context.Context, ix *Index, gen string, part, parts int) (*PushStats, error) {
	start := time.Now()
	if err := CheckGeneration(gen); err != nil {
		return nil, err
	}
	if parts < 1 || parts > maxPartitions || part < 0 || part >= parts {
		return nil, fmt.Errorf("index: partition %d/%d: want 0 <= I < N <= %d", part, parts, maxPartitions)
	}
	if ix.NumDocs() >= 1<<partitionShift {
		return nil, fmt.Errorf("index: %d documents: a partition holds fewer than %d", ix.NumDocs(), 1<<partitionShift)
	}
	if cur, err := r.Current(ctx); err == nil && cur == gen {
		return nil, fmt.Errorf("index: generation %s is being served; a build writes a new one", gen)
	} else if err != nil && !errors.Is(err, ErrNoGeneration) {
		return nil, err
	}
	m := ix.Manifest
	want := redisLayout{Format: redisFormat, Bits: bucketBits(int64(ix.NumPostings()) * int64(parts)),
		K: m.K, W: m.W, Tokenizer: m.Tokenizer, Partitions: parts, Created: time.Now().UTC()}
	lb, _ := json.Marshal(want)
	if err := r.w.SetNX(ctx, r.genKey(gen, "layout"), lb, 0).Err(); err != nil {
		return nil, fmt.Errorf("index: generation %s: %w", gen, err)
	}
	var lay redisLayout
	if _, err := r.getJSON(ctx, r.genKey(gen, "layout"), &lay); err != nil {
		return nil, err
	}
	if lay.Format != redisFormat || lay.K != want.K || lay.W != want.W || lay.Tokenizer != want.Tokenizer || lay.Partitions != parts {
		return nil, fmt.Errorf("index: generation %s: %w: it is k=%d w=%d tokenizer %d in %d partitions, this index k=%d w=%d tokenizer %d in %d",
			gen, ErrParams, lay.K, lay.W, lay.Tokenizer, lay.Partitions, want.K, want.W, want.Tokenizer, parts)
	}
	if n, err := r.w.Exists(ctx, r.genKey(gen, "part:"+strconv.Itoa(part))).Result(); err != nil {
		return nil, err
	} else if n > 0 {
		return &PushStats{Bits: lay.Bits, Complete: true, Elapsed: time.Since(start)}, nil
	}
	if err := r.w.Set(ctx, r.genKey(gen, "intent:"+strconv.Itoa(part)), ix.NumDocs(), 0).Err(); err != nil {
		return nil, err
	}
	st := &PushStats{Bits: lay.Bits}
	if err := r.pushDocs(ctx, ix, gen, part, st); err != nil {
		return nil, err
	}
	if err := r.pushPostings(ctx, ix, gen, part, &lay, st); err != nil {
		return nil, err
	}
	if ix.allow.exact != nil && part == 0 {
		if err := r.w.Set(ctx, r.genKey(gen, "allow"), deltas(ix.allow.exact), 0).Err(); err != nil {
			return nil, err
		}
	}
	p := redisPart{Partition: part, Build: m.Build, Totals: m.Totals, Licenses: m.Licenses, Sources: m.Sources,
		Policy: m.Policy, Done: time.Now().UTC()}
	p.Totals.Disk = 0
	if m.Allow != nil && part == 0 {
		a := *m.Allow
		a.File, a.Size, a.XXHash, a.Renamed = "", 0, "", 0
		p.Allow = &a
	}
	pb, _ := json.Marshal(p)
	if err := r.w.Set(ctx, r.genKey(gen, "part:"+strconv.Itoa(part)), pb, 0).Err(); err != nil {
		return nil, err
	}
	st.Elapsed = time.Since(start)
	return st, nil
}

// pushBatches runs fn's batches of commands as pipelines, four at a time.
func (r *Redis) pushBatches(ctx context.Context, produce func(send func(func(redis.Pipeliner)) error) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan func(redis.Pipeliner))
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fill := range work {
				_, err := r.w.Pipelined(ctx, func(p redis.Pipeliner) error { fill(p); return nil })
				if err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		}()
	}
	err := produce(func(fill func(redis.Pipeliner)) error {
		select {
		case work <- fill:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return err
}

func (r *Redis) pushDocs(ctx context.Context, ix *Index, gen string, part int, st *PushStats) error {
	return r.pushBatches(ctx, func(send func(func(redis.Pipeliner)) error) error {
		type kv struct {
			key string
			val []byte
		}
		var batch []kv
		size := 0
		flush := func() error {
			b := batch
			batch, size = nil, 0
			return send(func(p redis.Pipeliner) {
				for _, e := range b {
					p.Set(ctx, e.key, e.val, 0)
				}
			})
		}
		for d := 0; d < ix.NumDocs(); d++ {
			v := appendRemoteDoc(nil, ix, d)
			batch = append(batch, kv{r.docKey(gen, part<<partitionShift|d), v})
			size += len(v)
			st.Docs++
			st.DocBytes += int64(len(v))
			if size >= 4<<20 || len(batch) >= 512 {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if len(batch) > 0 {
			return flush()
		}
		return nil
	})
}

func (r *Redis) pushPostings(ctx context.Context, ix *Index, gen string, part int, lay *redisLayout, st *PushStats) error {
	if err := mergeScript.Load(ctx, r.w).Err(); err != nil {
		return fmt.Errorf("index: loading the merge script: %w", err)
	}
	buckets := map[uint64]bool{}
	err := r.pushBatches(ctx, func(send func(func(redis.Pipeliner)) error) error {
		type bucketArgs struct {
			b    uint64
			args []any
		}
		var batch []bucketArgs
		flush := func() error {
			b := batch
			batch = nil
			return send(func(p redis.Pipeliner) {
				for _, e := range b {
					keys := []string{r.bucketKey(gen, e.b), r.overflowKey(gen, e.b)}
					p.EvalSha(ctx, mergeScript.Hash(), keys, e.args...)
				}
			})
		}
		base := 0
		for _, s := range ix.shards {
			hashes, docs, pos, _, err := s.postings(false)
			if err != nil {
				return err
			}
			// The shard's postings in bucket order, by hash within a bucket.
			bucketOf := make([]uint32, len(hashes))
			order := make([]int32, len(hashes))
			for i, h := range hashes {
				bucketOf[i], order[i] = uint32(lay.bucket(h)), int32(i)
			}
			slices.SortFunc(order, func(a, b int32) int {
				return cmp.Or(cmp.Compare(bucketOf[a], bucketOf[b]), cmp.Compare(hashes[a], hashes[b]))
			})
			for k := 0; k < len(order); {
				b := bucketOf[order[k]]
				var args []any
				for k < len(order) && bucketOf[order[k]] == b {
					h := hashes[order[k]]
					var rec []byte
					for ; k < len(order) && hashes[order[k]] == h; k++ {
						i := order[k]
						if pos[i] >= 1<<24 {
							return fmt.Errorf("index: position %d: more than 2^24", pos[i])
						}
						doc := uint32(part<<partitionShift | (base + int(docs[i])))
						rec = binary.BigEndian.AppendUint32(rec, doc)
						rec = append(rec, byte(pos[i]>>16), byte(pos[i]>>8), byte(pos[i]))
						st.Postings++
					}
					args = append(args, field(h), rec)
				}
				buckets[uint64(b)] = true
				batch = append(batch, bucketArgs{uint64(b), args})
				if len(batch) >= 64 {
					if err := flush(); err != nil {
						return err
					}
				}
			}
			base += len(s.docs)
		}
		if len(batch) > 0 {
			return flush()
		}
		return nil
	})
	st.Buckets = len(buckets)
	if err != nil {
		return fmt.Errorf("index: pushing postings: %w", err)
	}
	return nil
}

// Publish serves generation gen: it checks that every partition of it is complete,
// writes its manifest, waits until the replicas hold all of it, and then points
// the index at it, in one step. The generation it replaces is retired: proxies
// still reading it may go on for grace, after which GC deletes it. Publish then
// runs GC. It returns the generation replaced, if any.
func (r *Redis) Publish(ctx context.Context, gen string, grace time.Duration) (string, error) {
	var lay redisLayout
	if ok, err := r.getJSON(ctx, r.genKey(gen, "layout"), &lay); err != nil {
		return "", err
	} else if !ok {
		return "", fmt.Errorf("index: generation %s does not exist", gen)
	}
	m := &Manifest{Format: lay.Format, K: lay.K, W: lay.W, Tokenizer: lay.Tokenizer, Build: gen,
		Created: time.Now().UTC(), Licenses: map[string]int{}, Shards: []ShardInfo{}}
	var missing []string
	for i := range lay.Partitions {
		var p redisPart
		ok, err := r.getJSON(ctx, r.genKey(gen, "part:"+strconv.Itoa(i)), &p)
		if err != nil {
			return "", err
		}
		if !ok {
			missing = append(missing, strconv.Itoa(i))
			continue
		}
		m.Totals.Docs += p.Totals.Docs
		m.Totals.Postings += p.Totals.Postings
		m.Totals.Tokens += p.Totals.Tokens
		m.Totals.Bytes += p.Totals.Bytes
		for l, n := range p.Licenses {
			m.Licenses[license.CanonicalOrSelf(l)] += n
		}
		m.Sources = append(m.Sources, p.Sources...)
		if p.Allow != nil {
			m.Allow = p.Allow
		}
		if m.Policy == nil {
			m.Policy = p.Policy
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("index: generation %s: partitions %s of %d are not complete; it is not published",
			gen, strings.Join(missing, ", "), lay.Partitions)
	}
	mb, _ := json.Marshal(m)
	if err := r.w.Set(ctx, r.genKey(gen, "meta"), mb, 0).Err(); err != nil {
		return "", err
	}
	if err := r.waitReplicas(ctx, time.Minute); err != nil {
		return "", err
	}
	old, err := switchScript.Run(ctx, r.w, []string{r.currentKey(), r.retiredKey()},
		gen, time.Now().Add(grace).Unix()).Text()
	if err != nil && !errors.Is(err, redis.Nil) {
		return "", fmt.Errorf("index: switching to generation %s: %w", gen, err)
	}
	_, err = r.GC(ctx, time.Now())
	return old, err
}

// waitReplicas waits until every replica has what its primary had when it was
// asked, so that a read routed to a replica finds the whole generation.
func (r *Redis) waitReplicas(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return r.w.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		target := int64(-1)
		for {
			info, err := c.Info(ctx, "replication").Result()
			if err != nil {
				return fmt.Errorf("index: waiting for replicas: %w", err)
			}
			offset, lowest := replicationOffsets(info)
			if target < 0 {
				target = offset
			}
			if lowest < 0 || lowest >= target {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("index: a replica of %s did not catch up: %w", c.Options().Addr, ctx.Err())
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

// replicationOffsets reads INFO replication: the primary's offset, and the lowest
// of its online replicas' (-1 if it has none).
func replicationOffsets(info string) (offset, lowest int64) {
	lowest = -1
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "master_repl_offset:"); ok {
			offset, _ = strconv.ParseInt(v, 10, 64)
		}
		if strings.HasPrefix(line, "slave") && strings.Contains(line, "state=online") {
			for _, kv := range strings.Split(line[strings.IndexByte(line, ':')+1:], ",") {
				if v, ok := strings.CutPrefix(kv, "offset="); ok {
					o, _ := strconv.ParseInt(v, 10, 64)
					if lowest < 0 || o < lowest {
						lowest = o
					}
				}
			}
		}
	}
	return offset, lowest
}

// Partitions returns how many partitions generation gen is built in.
func (r *Redis) Partitions(ctx context.Context, gen string) (int, error) {
	var lay redisLayout
	if ok, err := r.getJSON(ctx, r.genKey(gen, "layout"), &lay); err != nil {
		return 0, err
	} else if !ok {
		return 0, fmt.Errorf("index: generation %s does not exist", gen)
	}
	return lay.Partitions, nil
}

// Generations lists the generations that are served or retired: the current one
// first, then the retired ones with the time each may be deleted.
func (r *Redis) Generations(ctx context.Context) (current string, retired map[string]time.Time, err error) {
	current, err = r.Current(ctx)
	if err != nil && !errors.Is(err, ErrNoGeneration) {
		return "", nil, err
	}
	zs, err := r.w.ZRangeWithScores(ctx, r.retiredKey(), 0, -1).Result()
	if err != nil {
		return "", nil, err
	}
	retired = map[string]time.Time{}
	for _, z := range zs {
		retired[z.Member.(string)] = time.Unix(int64(z.Score), 0)
	}
	return current, retired, nil
}

// GC deletes the retired generations whose grace ended before now, and returns
// them.
func (r *Redis) GC(ctx context.Context, now time.Time) ([]string, error) {
	_, retired, err := r.Generations(ctx)
	if err != nil {
		return nil, err
	}
	var gone []string
	for _, g := range slices.Sorted(maps.Keys(retired)) {
		if retired[g].After(now) {
			continue
		}
		if err := r.Drop(ctx, g); err != nil {
			return gone, err
		}
		if err := r.w.ZRem(ctx, r.retiredKey(), g).Err(); err != nil {
			return gone, err
		}
		gone = append(gone, g)
	}
	return gone, nil
}

// Drop deletes every key of generation gen, published or not; it refuses the one
// being served.
func (r *Redis) Drop(ctx context.Context, gen string) error {
	if err := CheckGeneration(gen); err != nil {
		return err
	}
	if cur, err := r.Current(ctx); err == nil && cur == gen {
		return fmt.Errorf("index: generation %s is being served", gen)
	}
	var lay redisLayout
	ok, err := r.getJSON(ctx, r.genKey(gen, "layout"), &lay)
	if err != nil || !ok {
		return err
	}
	keys := []string{r.genKey(gen, "meta"), r.genKey(gen, "allow")}
	for i := range lay.Partitions {
		n, err := r.w.Get(ctx, r.genKey(gen, "intent:"+strconv.Itoa(i))).Int()
		if err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for d := range n {
			keys = append(keys, r.docKey(gen, i<<partitionShift|d))
		}
		keys = append(keys, r.genKey(gen, "part:"+strconv.Itoa(i)), r.genKey(gen, "intent:"+strconv.Itoa(i)))
	}
	for b := range uint64(1) << lay.Bits {
		keys = append(keys, r.bucketKey(gen, b), r.overflowKey(gen, b))
	}
	err = r.pushBatches(ctx, func(send func(func(redis.Pipeliner)) error) error {
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			batch := keys[:n]
			keys = keys[n:]
			if err := send(func(p redis.Pipeliner) {
				for _, k := range batch {
					p.Unlink(ctx, k)
				}
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("index: dropping generation %s: %w", gen, err)
	}
	// The layout goes last: until then, another Drop can find the rest.
	return r.w.Unlink(ctx, r.genKey(gen, "layout")).Err()
}

// MemoryStats sums INFO memory's used_memory over the cluster's primaries, for
// the bytes per fingerprint a generation costs.
func (r *Redis) MemoryStats(ctx context.Context) (primaries int64, err error) {
	var mu sync.Mutex
	err = r.w.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		info, err := c.Info(ctx, "memory").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				mu.Lock()
				primaries += n
				mu.Unlock()
			}
		}
		return nil
	})
	return primaries, err
}

// BucketMemory estimates the bytes generation gen's fingerprints take in the
// cluster (its buckets and their overflow hashes, not its documents) from MEMORY
// USAGE of sample buckets spread over the key space; it returns the estimate and
// the number of buckets.
func (r *Redis) BucketMemory(ctx context.Context, gen string, sample int) (int64, int, error) {
	var lay redisLayout
	if ok, err := r.getJSON(ctx, r.genKey(gen, "layout"), &lay); err != nil || !ok {
		return 0, 0, fmt.Errorf("index: generation %s: no layout (%v)", gen, err)
	}
	n := uint64(1) << lay.Bits
	sample = int(min(uint64(sample), n))
	var cmds []*redis.IntCmd
	_, err := r.w.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range sample {
			b := uint64(i) * n / uint64(sample)
			cmds = append(cmds, p.MemoryUsage(ctx, r.bucketKey(gen, b), 0), p.MemoryUsage(ctx, r.overflowKey(gen, b), 0))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, err
	}
	var sum int64
	for _, c := range cmds {
		sum += c.Val() // 0 for a bucket with no overflow
	}
	return sum * int64(n) / int64(sample), int(n), nil
}
