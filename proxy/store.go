package proxy

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"cleanroom/index"
)

// store holds the index being served and swaps in a new one atomically. Requests
// hold a reference to the index they started with; an index replaced by a reload is
// closed when its last request ends.
type store struct {
	dir string

	mu      sync.Mutex
	cur     *loaded
	stamp   manifestStamp // of the manifest cur was loaded from
	loading sync.Mutex    // one load at a time
}

// loaded is an open index with a reference count.
type loaded struct {
	ix   *index.Index
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

// load opens the index in the store's directory and swaps it in. On error the
// index being served, if any, stays.
func (s *store) load() (*index.Index, time.Duration, error) {
	s.loading.Lock()
	defer s.loading.Unlock()
	stamp, _ := stampOf(s.dir)
	start := time.Now()
	ix, err := index.Open(s.dir, index.OpenOptions{SkipRename: true}) // the proxy matches exactly
	if err != nil {
		return nil, 0, fmt.Errorf("loading index %s: %w", s.dir, err)
	}
	took := time.Since(start)
	s.mu.Lock()
	old := s.cur
	s.cur = &loaded{ix: ix, refs: 1, at: time.Now()}
	s.stamp = stamp
	s.mu.Unlock()
	if old != nil {
		s.release(old)
	}
	return ix, took, nil
}

// changed reports whether the manifest differs from the one last loaded.
func (s *store) changed() bool {
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
}
