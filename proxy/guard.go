package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
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

	mu     sync.Mutex
	reason error // errUpstreamStalled or errReplyTooLong, once struck
}

// strike records why the guard ended the upstream request, and ends it.
func (g *guard) strike(reason error) {
	g.mu.Lock()
	if g.reason == nil {
		g.reason = reason
	}
	g.mu.Unlock()
	g.cancel()
}

// struck returns why the guard ended the upstream request, or nil.
func (g *guard) struck() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.reason
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
	timer *time.Timer
}

func (b *guardedBody) Read(p []byte) (int, error) {
	g := b.g
	if err := g.struck(); err != nil {
		return 0, b.describe(err)
	}
	if g.max > 0 && int64(len(p)) > g.max-b.n+1 {
		p = p[:g.max-b.n+1] // one byte over the limit is enough to know
	}
	if g.idle > 0 {
		if b.timer == nil {
			b.timer = time.AfterFunc(g.idle, func() { g.strike(errUpstreamStalled) })
		} else {
			b.timer.Reset(g.idle)
		}
	}
	n, err := b.rc.Read(p)
	if b.timer != nil {
		b.timer.Stop()
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
	if b.timer != nil {
		b.timer.Stop()
	}
	return b.rc.Close()
}
