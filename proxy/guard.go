package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// errUpstreamStalled and errReplyTooLong end an upstream response the proxy gives up
// on: one that sent no byte for Options.StreamIdle, or more than Options.MaxReply.
var (
	errUpstreamStalled = errors.New("upstream stalled")
	errReplyTooLong    = errors.New("upstream reply too long")
)

// guardKey keys the guard of a filtered request in its context.
type guardKey struct{}

// A guard watches the upstream side of one filtered request. Its cancel ends the
// upstream request (its context is the request's to the upstream, derived from the
// client's), so that a stalled read returns at once.
type guard struct {
	client context.Context // the client's request context
	cancel context.CancelFunc
	idle   time.Duration
	max    int64

	reason atomic.Pointer[error] // errUpstreamStalled or errReplyTooLong, once struck
}

// strike records why the guard ended the upstream request, and ends it.
func (g *guard) strike(reason error) {
	g.reason.CompareAndSwap(nil, &reason)
	g.cancel()
}

// struck returns why the guard ended the upstream request, or nil.
func (g *guard) struck() error {
	if r := g.reason.Load(); r != nil {
		return *r
	}
	return nil
}

// body wraps an upstream response body with the guard's limits.
func (g *guard) body(rc io.ReadCloser) io.ReadCloser {
	return &guardedBody{g: g, rc: rc}
}

// guardedBody is an upstream body read under a guard: a Read that waits longer than
// the idle timeout, or that brings the body past its largest size, fails with an
// error that says so.
type guardedBody struct {
	g     *guard
	rc    io.ReadCloser
	n     int64
	watch *watchdog
}

// A watchdog calls stall when a read has waited for idle. A Read only marks
// itself waiting and done (two atomic stores, no timer to reset: a stream makes
// thousands of reads); a timer looks every idle/4, so a stall is seen after idle
// to 1.25 idle.
type watchdog struct {
	idle    time.Duration
	stall   func()
	reads   atomic.Uint64 // reads done
	waiting atomic.Bool   // a read is waiting
	timer   *time.Timer
	// The timer's own: the reads it saw last and since when.
	seen  uint64
	since time.Time
}

func newWatchdog(idle time.Duration, stall func()) *watchdog {
	w := &watchdog{idle: idle, stall: stall, since: time.Now()}
	w.timer = time.AfterFunc(idle/4, w.look)
	return w
}

func (w *watchdog) look() {
	now := time.Now()
	if r := w.reads.Load(); r != w.seen || !w.waiting.Load() {
		w.seen, w.since = r, now
	} else if now.Sub(w.since) >= w.idle {
		w.stall()
		return
	}
	w.timer.Reset(w.idle / 4)
}

func (w *watchdog) begin() { w.waiting.Store(true) }

func (w *watchdog) end() {
	w.reads.Add(1)
	w.waiting.Store(false)
}

func (w *watchdog) stop() { w.timer.Stop() }

func (b *guardedBody) Read(p []byte) (int, error) {
	g := b.g
	if err := g.struck(); err != nil {
		return 0, b.describe(err)
	}
	if g.max > 0 && int64(len(p)) > g.max-b.n+1 {
		p = p[:g.max-b.n+1] // one byte over the limit is enough to know
	}
	if g.idle > 0 && b.watch == nil {
		b.watch = newWatchdog(g.idle, func() { g.strike(errUpstreamStalled) })
	}
	if b.watch != nil {
		b.watch.begin()
	}
	n, err := b.rc.Read(p)
	if b.watch != nil {
		b.watch.end()
	}
	if serr := g.struck(); serr != nil {
		return 0, b.describe(serr)
	}
	if err != nil && g.client.Err() != nil {
		// The upstream read failed because the client went away and took the
		// upstream request with it: not the upstream's fault.
		return n, errClientGone
	}
	b.n += int64(n)
	if g.max > 0 && b.n > g.max {
		g.strike(errReplyTooLong)
		return n - int(b.n-g.max), b.describe(errReplyTooLong)
	}
	return n, err
}

// describe wraps a guard's reason with the limit, for the client's error message.
func (b *guardedBody) describe(reason error) error {
	if errors.Is(reason, errUpstreamStalled) {
		return fmt.Errorf("%w: no data for %v", reason, b.g.idle)
	}
	return fmt.Errorf("%w: more than %d bytes", reason, b.g.max)
}

func (b *guardedBody) Close() error {
	if b.watch != nil {
		b.watch.stop()
	}
	return b.rc.Close()
}
