package index

import (
	"container/list"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"cleanroom/fingerprint"
)

// An index in a Redis Cluster (or Valkey, which speaks the same protocol) is for
// the users an index has outgrown one machine: it lives once in a cluster that many
// proxies share. Its layout, all under one key prefix P:
//
//	{P}:current          the generation being served (a string)
//	{P}:retired          generations replaced, by the time they may be deleted (a sorted set)
//	P:g:G:layout         how generation G is cut: bucket bits, k, w, partitions (JSON)
//	P:g:G:intent:I       documents partition I is uploading, written before them
//	P:g:G:part:I         partition I is complete: its totals (JSON), written last
//	P:g:G:meta           the generation's manifest, written when it is published
//	P:g:G:allow          the allow set's hashes, as uvarint deltas
//	P:g:G:b{B}           bucket B: the fingerprints whose mixed top bits are B (a hash)
//	P:g:G:x{B}           bucket B's postings of fingerprints too common to hold inline
//	P:g:G:d:D            document D: where it is from, its token checks and line table
//
// A bucket is a Redis hash of about a hundred fields, small enough for Redis's
// compact listpack encoding (at most 512 fields of at most 64 bytes each, Redis's
// defaults, hash-max-listpack-entries and -value), which costs a few bytes a field
// instead of a hash table's ~70. A field
// is a fingerprint's low 32 bits (the bucket is a function of all of them; two
// fingerprints alike in both are a rare false hit, which fails the token check
// every hit goes through), its value the fingerprint's postings, 7 bytes each: document (32
// bits: partition, then the partition's document number) and token position (24
// bits). A fingerprint with more than 9 postings would make the value too long for
// the listpack; its value is then 0xff and the count, and its postings go to the
// bucket's overflow hash, which the hash tag keeps in the same slot.
//
// Looking up the fingerprints of one response is one HMGET per bucket they fall in,
// pipelined: one round trip to each node that holds any of them. The documents of
// the postings found (a response that copies nothing finds none) are a second
// round trip, and stay in a cache of the proxy's.

// redisFormat is the version of the layout.
const redisFormat = 1

// Limits of the layout.
const (
	recordSize     = 7
	inlineRecords  = 9 // 63 bytes: within hash-max-listpack-value's 64
	overflowMark   = 0xff
	maxOverflow    = 1024 // postings kept of one fingerprint; the count goes on
	partitionShift = 24   // document number = partition<<24 | the partition's number
	maxPartitions  = 256
)

// A Redis is a connection to a Redis Cluster that holds index generations under a
// key prefix. It is safe for concurrent use.
type Redis struct {
	// c reads from primaries and replicas alike: lookups, of a generation that
	// every replica holds before it is published. w goes to the primaries only:
	// builds, and what must read what was just written.
	c, w   *redis.ClusterClient
	prefix string
	addrs  []string
	// LookupTimeout bounds one lookup (every round trip it takes) beyond the
	// caller's context. Default 1s.
	LookupTimeout time.Duration
	// DocCacheBytes bounds the documents an open generation keeps in memory. Default
	// 256 MiB.
	DocCacheBytes int64
}

// IsRedisURL reports whether an index location names a Redis Cluster rather than a
// directory.
func IsRedisURL(s string) bool {
	return strings.HasPrefix(s, "redis://") || strings.HasPrefix(s, "rediss://")
}

// DialRedis connects to the Redis Cluster an index URL names:
//
//	redis://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...][/PREFIX]
//
// rediss:// connects over TLS. The hosts are seeds: the client learns the rest of
// the cluster from them. PREFIX defaults to "cleanroom". A password may come from
// $CLEANROOM_REDIS_PASSWORD instead of the URL. DialRedis checks that the cluster
// answers.
func DialRedis(ctx context.Context, rawURL string) (*Redis, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok || (scheme != "redis" && scheme != "rediss") {
		return nil, fmt.Errorf("index: %q is not a redis:// or rediss:// URL", rawURL)
	}
	hosts, prefix, _ := strings.Cut(rest, "/")
	if prefix == "" {
		prefix = "cleanroom"
	}
	if strings.ContainsAny(prefix, "{}: ") {
		return nil, fmt.Errorf("index: key prefix %q: must not hold braces, colons or spaces", prefix)
	}
	opts := &redis.ClusterOptions{
		MaxRetries:      3,
		MinRetryBackoff: 8 * time.Millisecond,
		MaxRetryBackoff: 256 * time.Millisecond,
		DialTimeout:     2 * time.Second,
		ReadTimeout:     2 * time.Second,
		WriteTimeout:    2 * time.Second,
		PoolSize:        32,
		// The client learns of a failover from MOVED replies, or else at its next
		// look at the slots; a failed command also makes it look (see failed).
		ClusterStateReloadInterval: 10 * time.Second,
	}
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		user := hosts[:at]
		hosts = hosts[at+1:]
		u, p, hasPass := strings.Cut(user, ":")
		var err error
		if opts.Username, err = url.PathUnescape(u); err == nil && hasPass {
			opts.Password, err = url.PathUnescape(p)
		}
		if err != nil {
			return nil, fmt.Errorf("index: redis URL: %v", err)
		}
	}
	if opts.Password == "" {
		opts.Password = os.Getenv("CLEANROOM_REDIS_PASSWORD")
	}
	if scheme == "rediss" {
		opts.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	for _, h := range strings.Split(hosts, ",") {
		if _, port, err := splitHostPort(h); err != nil || port == "" {
			return nil, fmt.Errorf("index: redis URL: %q is not HOST:PORT", h)
		}
		opts.Addrs = append(opts.Addrs, h)
	}
	// Lookups go to primaries and replicas alike: a primary that fails leaves its
	// replica to answer while the cluster fails over.
	ropts := *opts
	ropts.RouteRandomly = true
	// Builds send pipelines of scripts that take a primary seconds to run.
	wopts := *opts
	wopts.ReadTimeout, wopts.WriteTimeout = 30*time.Second, 30*time.Second
	r := &Redis{c: redis.NewClusterClient(&ropts), w: redis.NewClusterClient(&wopts), prefix: prefix, addrs: opts.Addrs,
		LookupTimeout: time.Second, DocCacheBytes: 256 << 20}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.w.Ping(pctx).Err(); err != nil {
		r.Close()
		return nil, fmt.Errorf("index: redis cluster %s: %w", hosts, err)
	}
	return r, nil
}

func splitHostPort(h string) (host, port string, err error) {
	i := strings.LastIndex(h, ":")
	if i < 0 {
		return "", "", errors.New("no port")
	}
	if _, err := strconv.ParseUint(h[i+1:], 10, 16); err != nil {
		return "", "", err
	}
	return h[:i], h[i+1:], nil
}

// failed has the clients look at the cluster's slots again after an error: a
// primary that failed is replaced by its replica, which they learn of only so.
func (r *Redis) failed(ctx context.Context) {
	r.c.ReloadState(ctx)
	r.w.ReloadState(ctx)
}

func init() {
	// go-redis logs to stderr on its own; the proxy logs each failed lookup
	// itself, so the library's lines go to the debug level.
	redis.SetLogger(slogRedis{})
}

type slogRedis struct{}

func (slogRedis) Printf(ctx context.Context, format string, v ...any) {
	slog.DebugContext(ctx, "redis: "+fmt.Sprintf(format, v...))
}

// Close closes the connections.
func (r *Redis) Close() error { return errors.Join(r.c.Close(), r.w.Close()) }

// Prefix returns the key prefix.
func (r *Redis) Prefix() string { return r.prefix }

// String names the cluster and prefix, for logs.
func (r *Redis) String() string { return "redis://" + strings.Join(r.addrs, ",") + "/" + r.prefix }

func (r *Redis) currentKey() string { return "{" + r.prefix + "}:current" }
func (r *Redis) retiredKey() string { return "{" + r.prefix + "}:retired" }

func (r *Redis) genKey(gen, what string) string { return r.prefix + ":g:" + gen + ":" + what }

func (r *Redis) bucketKey(gen string, b uint64) string {
	return r.prefix + ":g:" + gen + ":b{" + strconv.FormatUint(b, 16) + "}"
}

func (r *Redis) overflowKey(gen string, b uint64) string {
	return r.prefix + ":g:" + gen + ":x{" + strconv.FormatUint(b, 16) + "}"
}

func (r *Redis) docKey(gen string, d int) string {
	return r.prefix + ":g:" + gen + ":d:" + strconv.FormatUint(uint64(d), 16)
}

// redisLayout is how a generation is cut; every partition of it agrees on it.
type redisLayout struct {
	Format     int       `json:"format"`
	Bits       int       `json:"bits"` // the bucket is the hash's top Bits bits
	K          int       `json:"k"`
	W          int       `json:"w"`
	Tokenizer  int       `json:"tokenizer"`
	Partitions int       `json:"partitions"`
	Created    time.Time `json:"created"`
}

// bucket returns the bucket of fingerprint hash h: the top bits of h mixed (a
// multiplicative hash). Not h's own top bits: winnowing keeps the least hash of
// every window, so fingerprints crowd the low end of the hash space, and buckets
// cut by their top bits would be full at one end and empty at the other.
func (l *redisLayout) bucket(h uint64) uint64 { return (h * 0x9e3779b97f4a7c15) >> (64 - l.Bits) }

// bucketBits chooses the bucket bits for n fingerprints: 64 to 128 of them a
// bucket, so that the keys' own cost is spread thin, and even the fullest of a
// million buckets stays far within a listpack's 512 fields (and a lookup's scan of
// a bucket is short).
func bucketBits(n int64) int {
	b := bits.Len64(uint64(n / 128))
	return min(max(b, 4), 32)
}

// A redisPart records a complete partition of a generation.
type redisPart struct {
	Partition int             `json:"partition"`
	Build     string          `json:"build"` // the local build it was pushed from
	Totals    Totals          `json:"totals"`
	Licenses  map[string]int  `json:"licenses"`
	Sources   []SourceInfo    `json:"sources,omitempty"`
	Allow     *AllowInfo      `json:"allow,omitempty"`
	Policy    json.RawMessage `json:"policy,omitempty"`
	Done      time.Time       `json:"done"`
}

// ErrNoGeneration is returned where a cluster has no published index.
var ErrNoGeneration = errors.New("index: the redis cluster has no published index generation")

// Current returns the generation being served, or ErrNoGeneration.
func (r *Redis) Current(ctx context.Context) (string, error) {
	g, err := r.w.Get(ctx, r.currentKey()).Result()
	if errors.Is(err, redis.Nil) {
		return "", ErrNoGeneration
	}
	if err != nil {
		r.failed(context.WithoutCancel(ctx))
	}
	return g, err
}

func (r *Redis) getJSON(ctx context.Context, key string, v any) (bool, error) {
	b, err := r.w.Get(ctx, key).Bytes()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
	}
	return true, nil
}

// Open opens generation gen of the index, or the one being served if gen is "".
// Only a published generation opens: a build in progress is never served.
func (r *Redis) Open(ctx context.Context, gen string) (*RedisIndex, error) {
	if gen == "" {
		g, err := r.Current(ctx)
		if err != nil {
			return nil, err
		}
		gen = g
	}
	ri := &RedisIndex{r: r, gen: gen, cache: newDocCache(r.DocCacheBytes), Manifest: &Manifest{}}
	if ok, err := r.getJSON(ctx, r.genKey(gen, "layout"), &ri.layout); err != nil || !ok {
		return nil, fmt.Errorf("index: generation %s: no layout (%v)", gen, err)
	}
	if ri.layout.Format != redisFormat {
		return nil, fmt.Errorf("index: generation %s: %w: layout format %d, this program reads %d", gen, ErrVersion, ri.layout.Format, redisFormat)
	}
	if ok, err := r.getJSON(ctx, r.genKey(gen, "meta"), ri.Manifest); err != nil || !ok {
		return nil, fmt.Errorf("index: generation %s is not published (%v)", gen, err)
	}
	if ri.Manifest.Allow != nil {
		b, err := r.w.Get(ctx, r.genKey(gen, "allow")).Bytes()
		if err != nil {
			return nil, fmt.Errorf("index: generation %s: allow set: %w", gen, err)
		}
		if ri.allow.exact, err = undeltas(b, ri.Manifest.Allow.Fingerprints, "allow set"); err != nil {
			return nil, fmt.Errorf("index: generation %s: allow set: %w", gen, err)
		}
	}
	return ri, nil
}

// A RedisIndex is one published generation of an index in a Redis Cluster. It is
// safe for concurrent use; Close drops its document cache, not the connection.
type RedisIndex struct {
	Manifest *Manifest
	r        *Redis
	gen      string
	layout   redisLayout
	allow    allowSet
	cache    *docCache
}

// Generation returns the generation's name.
func (ri *RedisIndex) Generation() string { return ri.gen }

// Meta returns the generation's manifest: its parameters and totals.
func (ri *RedisIndex) Meta() *Manifest { return ri.Manifest }

// Params returns the fingerprint parameters queries must use.
func (ri *RedisIndex) Params() fingerprint.Params { return ri.Manifest.Params() }

// RenameParams reports that a Redis index has no rename-robust fingerprints.
func (ri *RedisIndex) RenameParams() (fingerprint.Params, bool) { return fingerprint.Params{}, false }

// HasKGramFilter reports false: the filter of all k-grams is for an index that
// fits in one machine's memory.
func (ri *RedisIndex) HasKGramFilter() bool { return false }

// MayHaveKGram returns true: there is no k-gram filter.
func (ri *RedisIndex) MayHaveKGram(uint64) bool { return true }

// NumDocs returns the number of documents.
func (ri *RedisIndex) NumDocs() int { return ri.Manifest.Totals.Docs }

// NumPostings returns the number of postings.
func (ri *RedisIndex) NumPostings() int { return int(ri.Manifest.Totals.Postings) }

// Close drops the document cache.
func (ri *RedisIndex) Close() error {
	ri.cache.reset()
	return nil
}

// Fingerprint tokenizes and fingerprints a whole text with the index's parameters.
func (ri *RedisIndex) Fingerprint(l fingerprint.Lang, text []byte, rename bool) *fingerprint.Stream {
	return fingerprintText(ri.Params(), fingerprint.Params{}, false, l, text, false)
}

// errNoRename is the error of a rename-robust matcher on a Redis index.
var errNoRename = errors.New("index: an index in redis holds no rename-robust fingerprints")

// NewMatcher returns a matcher for one text. Its lookups go to the cluster; Err
// says whether one failed.
func (ri *RedisIndex) NewMatcher(opts MatchOptions) *Matcher {
	v := &remoteView{ri: ri, found: map[uint64]foundRange{}, docs: map[int]*remoteDoc{}}
	m := newMatcher(opts, ri.Params(), v, v, &ri.allow)
	m.fetch = v
	if opts.Rename {
		m.err = errNoRename
	}
	return m
}

// ScanContext fingerprints a whole text and returns its matches.
func (ri *RedisIndex) ScanContext(ctx context.Context, l fingerprint.Lang, text []byte, opts MatchOptions) ([]Match, error) {
	m := ri.NewMatcher(opts)
	m.SetContext(ctx)
	m.Feed(ri.Fingerprint(l, text, false))
	if m.Err() != nil {
		return nil, m.Err()
	}
	return m.Matches(), nil
}

// foundRange is what a lookup found for one fingerprint: postings [lo, hi) of the
// view's refs, of n the index holds.
type foundRange struct{ lo, hi, n int32 }

// remoteView is one Matcher's view of a RedisIndex: the postings and documents it
// has brought so far.
type remoteView struct {
	ri    *RedisIndex
	found map[uint64]foundRange
	refs  []uint64 // document<<32 | position
	docs  map[int]*remoteDoc
}

// remoteDoc is a document as the cluster holds it.
type remoteDoc struct {
	info   DocInfo
	checks checkSeq
	lines  lineTable
	size   int64 // bytes it holds, for the cache
}

func (v *remoteView) find(h uint64) (lo, hi, n int) {
	f := v.found[h]
	return int(f.lo), int(f.hi), int(f.n)
}

func (v *remoteView) ref(i int) (doc, pos int) {
	r := v.refs[i]
	return int(r >> 32), int(uint32(r))
}

var emptyDoc = &remoteDoc{}

func (v *remoteView) doc(d int) *remoteDoc {
	if rd := v.docs[d]; rd != nil {
		return rd
	}
	return emptyDoc // a posting into a document the cluster lacks: it matches nothing
}

func (v *remoteView) checks(d int) checkSeq     { return v.doc(d).checks }
func (v *remoteView) isIdent(d, i int) bool     { return false }
func (v *remoteView) lineTable(d int) lineTable { return v.doc(d).lines }
func (v *remoteView) Doc(d int) DocInfo         { return v.doc(d).info }

// prefetch looks up the fingerprints not looked up yet, in one pipelined round
// trip, then brings the documents their postings point into that the view lacks.
func (v *remoteView) prefetch(ctx context.Context, fps []fingerprint.Fingerprint, opts MatchOptions) error {
	ri := v.ri
	r := ri.r
	if r.LookupTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.LookupTimeout)
		defer cancel()
	}
	type bucketQuery struct {
		hashes []uint64
		fields []any
	}
	var order []uint64
	byBucket := map[uint64]*bucketQuery{}
	for _, f := range fps {
		h := f.Hash
		if _, done := v.found[h]; done || (!opts.NoAllow && ri.allow.has(h, false)) {
			continue
		}
		v.found[h] = foundRange{} // also marks it as asked within this batch
		b := ri.layout.bucket(h)
		q := byBucket[b]
		if q == nil {
			q = &bucketQuery{}
			byBucket[b] = q
			order = append(order, b)
		}
		q.hashes = append(q.hashes, h)
		q.fields = append(q.fields, field(h))
	}
	if len(order) == 0 {
		return nil
	}
	cmds := make([]*redis.SliceCmd, len(order))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, b := range order {
			q := byBucket[b]
			args := make([]any, 0, 2+len(q.fields))
			args = append(args, "HMGET", r.bucketKey(ri.gen, b))
			cmds[i] = redis.NewSliceCmd(ctx, append(args, q.fields...)...)
			p.Process(ctx, cmds[i])
		}
		return nil
	})
	if err != nil {
		// The Matcher stops at its first error, so the fingerprints marked as
		// asked stay so.
		r.failed(context.WithoutCancel(ctx))
		return fmt.Errorf("index: redis lookup: %w", err)
	}
	wantDocs := map[int]bool{}
	var overflow []uint64 // fingerprints whose postings are in their bucket's overflow hash
	for i, b := range order {
		q := byBucket[b]
		for j, val := range cmds[i].Val() {
			s, _ := val.(string)
			h := q.hashes[j]
			switch {
			case s == "":
			case len(s)%recordSize == 0:
				v.addRecords(h, s, -1, opts, wantDocs)
			case len(s) == 5 && s[0] == overflowMark:
				n := int32(binary.BigEndian.Uint32([]byte(s[1:])))
				v.found[h] = foundRange{n: n}
				if opts.MaxPostings < 0 || int(n) <= opts.MaxPostings {
					overflow = append(overflow, h)
				}
			default:
				return fmt.Errorf("index: redis lookup: %w: bucket %x holds a value of %d bytes", ErrCorrupt, b, len(s))
			}
		}
	}
	if len(overflow) > 0 {
		ocmds := make([]*redis.StringCmd, len(overflow))
		_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, h := range overflow {
				ocmds[i] = p.HGet(ctx, r.overflowKey(ri.gen, ri.layout.bucket(h)), string(field(h)))
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			r.failed(context.WithoutCancel(ctx))
			return fmt.Errorf("index: redis lookup: %w", err)
		}
		for i, h := range overflow {
			s, _ := ocmds[i].Result()
			v.addRecords(h, s, v.found[h].n, opts, wantDocs)
		}
	}
	return v.fetchDocs(ctx, wantDocs)
}

// field returns the field of hash h in its bucket: its low 32 bits.
func field(h uint64) []byte {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(h))
	return b[:]
}

// addRecords records the postings of fingerprint h held in s, n of them in all (-1:
// as many as s holds), and notes the documents they need.
func (v *remoteView) addRecords(h uint64, s string, n int32, opts MatchOptions, want map[int]bool) {
	k := int32(len(s) / recordSize)
	if n < 0 {
		n = k
	}
	f := foundRange{lo: int32(len(v.refs)), n: n}
	if opts.MaxPostings > 0 && int(n) > opts.MaxPostings {
		v.found[h] = f // too common: the Matcher needs only the count
		return
	}
	for i := 0; i+recordSize <= len(s); i += recordSize {
		doc := uint64(s[i])<<24 | uint64(s[i+1])<<16 | uint64(s[i+2])<<8 | uint64(s[i+3])
		pos := uint64(s[i+4])<<16 | uint64(s[i+5])<<8 | uint64(s[i+6])
		v.refs = append(v.refs, doc<<32|pos)
		if _, ok := v.docs[int(doc)]; !ok {
			want[int(doc)] = true
		}
	}
	f.hi = int32(len(v.refs))
	v.found[h] = f
}

// fetchDocs brings the documents the view lacks, from the cache or the cluster.
func (v *remoteView) fetchDocs(ctx context.Context, want map[int]bool) error {
	ri := v.ri
	var missing []int
	for d := range want {
		if rd := ri.cache.get(d); rd != nil {
			v.docs[d] = rd
		} else {
			missing = append(missing, d)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	cmds := make([]*redis.StringCmd, len(missing))
	_, err := ri.r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, d := range missing {
			cmds[i] = p.Get(ctx, ri.r.docKey(ri.gen, d))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		ri.r.failed(context.WithoutCancel(ctx))
		return fmt.Errorf("index: redis documents: %w", err)
	}
	for i, d := range missing {
		b, err := cmds[i].Bytes()
		if errors.Is(err, redis.Nil) {
			continue // postings into a document the cluster lacks match nothing
		}
		rd, err := decodeRemoteDoc(b)
		if err != nil {
			return fmt.Errorf("index: redis document %x of generation %s: %w", d, ri.gen, err)
		}
		v.docs[d] = ri.cache.put(d, rd)
	}
	return nil
}

// appendRemoteDoc encodes document d of ix for the cluster.
func appendRemoteDoc(b []byte, ix *Index, d int) []byte {
	info := ix.Doc(d)
	b = appendStr(b, info.Repo.Name)
	b = appendStr(b, info.Repo.licenseAsFound())
	b = appendStr(b, info.Repo.URL)
	b = appendStr(b, info.Repo.Version)
	b = appendStr(b, info.Path)
	b = appendStr(b, info.licenseAsFound())
	b = appendStr(b, info.LicenseFrom)
	b = appendStr(b, info.Lang)
	b = binary.AppendUvarint(b, uint64(info.Size))
	b = appendStr(b, string(ix.checks(d)))
	b = appendStr(b, string(ix.lineTable(d)))
	return b
}

func decodeRemoteDoc(b []byte) (*remoteDoc, error) {
	r := &byteReader{b: b}
	repo := &Repo{}
	repo.Name, repo.License, repo.URL, repo.Version = r.str(), r.str(), r.str(), r.str()
	repo.canonicalize()
	rd := &remoteDoc{info: DocInfo{Repo: repo}}
	rd.info.Path, rd.info.License, rd.info.LicenseFrom, rd.info.Lang = r.str(), r.str(), r.str(), r.str()
	rd.info.License, rd.info.LicenseAsFound = canonicalLicense(rd.info.License)
	rd.info.Size = int64(r.uvarint())
	rd.checks = checkSeq(r.bytes(r.uvarint()))
	rd.lines = lineTable(r.bytes(r.uvarint()))
	if r.err != nil {
		return nil, corruptf("%v", r.err)
	}
	if len(r.b) != 0 || len(rd.checks)%2 != 0 {
		return nil, corruptf("%d trailing bytes, %d bytes of checks", len(r.b), len(rd.checks))
	}
	rd.info.Tokens = rd.checks.len()
	rd.size = int64(len(b)) + 200
	return rd, nil
}

// docCache keeps the documents lookups brought, least recently used out first.
type docCache struct {
	mu    sync.Mutex
	max   int64
	bytes int64
	lru   *list.List // of *cached, most recent at the front
	byDoc map[int]*list.Element
}

type cached struct {
	doc int
	rd  *remoteDoc
}

func newDocCache(max int64) *docCache {
	return &docCache{max: max, lru: list.New(), byDoc: map[int]*list.Element{}}
}

func (c *docCache) get(d int) *remoteDoc {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.byDoc[d]
	if e == nil {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cached).rd
}

// put adds a document and returns the one the cache holds for d (another
// lookup's, if it came first).
func (c *docCache) put(d int, rd *remoteDoc) *remoteDoc {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.byDoc[d]; e != nil {
		c.lru.MoveToFront(e)
		return e.Value.(*cached).rd
	}
	c.byDoc[d] = c.lru.PushFront(&cached{d, rd})
	c.bytes += rd.size
	for c.bytes > c.max && c.lru.Len() > 1 {
		e := c.lru.Back()
		old := e.Value.(*cached)
		c.lru.Remove(e)
		delete(c.byDoc, old.doc)
		c.bytes -= old.rd.size
	}
	return rd
}

func (c *docCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Init()
	c.byDoc = map[int]*list.Element{}
	c.bytes = 0
}
