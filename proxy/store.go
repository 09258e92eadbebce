package proxy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"cleanroom/index"
)

// store holds the index being served and swaps in a new one atomically. Requests
// hold a reference to the index they started with; an index replaced by a reload is
// closed when its last request ends. The index is a directory of shards, or a
// Redis Cluster (a redis:// location), whose generation pointer the store follows.
type store struct {
	dir string // a directory or a redis:// URL
	// For a Redis Cluster: the connection, made at the first load, and its
	// settings.
	redis         *index.Redis
	lookupTimeout time.Duration
	cacheBytes    int64
	// rename loads the rename-robust fingerprints, and wants them (--rename).
	rename bool

	mu      sync.Mutex
	cur     *loaded
	stamp   manifestStamp // of the manifest cur was loaded from
	gen     string        // the generation cur is, for a Redis Cluster
	loading sync.Mutex    // one load at a time
}

// loaded is an open index with a reference count.
type loaded struct {
	ix   index.Store
	refs int // guarded by store.mu; the store's own reference counts as one
	at   time.Time
}

type manifestStamp struct {
	mod  time.Time
	size int64
}

func stampOf(dir string) (manifestStamp, error) {
	fi, err := os.Stat(filepath.Join(dir, index.ManifestName))
	if err != nil {
		return manifestStamp{}, err
	}
	return manifestStamp{fi.ModTime(), fi.Size()}, nil
}

// acquire returns the current index with a reference taken, or nil if none is
// loaded.
func (s *store) acquire() *loaded {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	s.cur.refs++
	return s.cur
}

func (s *store) release(l *loaded) {
	s.mu.Lock()
	l.refs--
	last := l.refs == 0
	s.mu.Unlock()
	if last {
		l.ix.Close()
	}
}

// load opens the index in the store's directory, or the generation a Redis
// Cluster serves, and swaps it in. On error the index being served, if any, stays.
func (s *store) load() (index.Store, time.Duration, error) {
	s.loading.Lock()
	defer s.loading.Unlock()
	if index.IsRedisURL(s.dir) {
		if s.rename {
			return nil, 0, fmt.Errorf("loading index %s: --rename needs rename-robust fingerprints, which an index in a Redis Cluster does not hold: serve a local index built with indexer build --rename", s.dir)
		}
		return s.loadRedis()
	}
	stamp, _ := stampOf(s.dir)
	start := time.Now()
	// The rename-robust fingerprints are loaded only for --rename: they cost memory.
	ix, err := index.Open(s.dir, index.OpenOptions{SkipRename: !s.rename})
	if err != nil {
		return nil, 0, fmt.Errorf("loading index %s: %w", s.dir, err)
	}
	took := time.Since(start)
	if _, ok := ix.RenameParams(); s.rename && !ok {
		ix.Close()
		return nil, 0, fmt.Errorf("loading index %s: --rename needs rename-robust fingerprints, and it has none: rebuild it with indexer build --rename", s.dir)
	}
	s.swap(ix, stamp, "")
	return ix, took, nil
}

// loadRedis opens the generation the cluster serves.
func (s *store) loadRedis() (index.Store, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if s.redis == nil {
		r, err := index.DialRedis(ctx, s.dir)
		if err != nil {
			return nil, 0, err
		}
		if s.lookupTimeout > 0 {
			r.LookupTimeout = s.lookupTimeout
		}
		if s.cacheBytes > 0 {
			r.DocCacheBytes = s.cacheBytes
		}
		s.redis = r
	}
	ri, err := s.redis.Open(ctx, "")
	if err != nil {
		return nil, 0, fmt.Errorf("loading index %s: %w", s.redis, err)
	}
	s.swap(ri, manifestStamp{}, ri.Generation())
	return ri, time.Since(start), nil
}

// swap makes ix the index served.
func (s *store) swap(ix index.Store, stamp manifestStamp, gen string) {
	s.mu.Lock()
	old := s.cur
	s.cur = &loaded{ix: ix, refs: 1, at: time.Now()}
	s.stamp = stamp
	s.gen = gen
	s.mu.Unlock()
	if old != nil {
		s.release(old)
	}
}

// changed reports whether the manifest differs from the one last loaded, or the
// cluster serves another generation. An unreachable cluster is no change.
func (s *store) changed() bool {
	if index.IsRedisURL(s.dir) {
		s.loading.Lock()
		r := s.redis
		s.loading.Unlock()
		if r == nil {
			return true // never connected: try again
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		g, err := r.Current(ctx)
		s.mu.Lock()
		defer s.mu.Unlock()
		return err == nil && g != s.gen
	}
	st, err := stampOf(s.dir)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return st != s.stamp
}

// close drops the store's reference to its index.
func (s *store) close() {
	s.mu.Lock()
	cur := s.cur
	s.cur = nil
	s.mu.Unlock()
	if cur != nil {
		s.release(cur)
	}
	s.loading.Lock()
	defer s.loading.Unlock()
	if s.redis != nil {
		s.redis.Close()
	}
}
