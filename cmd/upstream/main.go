// Command upstream serves a fake model API for tests, load tests and demos of the
// proxy: OpenAI's chat completions, completions and Responses API, Anthropic's
// Messages API and Ollama's /api/chat and /api/generate, answered by a model that
// echoes the last user message or, with replay files, regurgitates them.
//
//	upstream [--listen ADDR] [--markdown] [--seed N] [--wire LIST] [--fault LIST] [--admin] [--replay FILE]... [FILE...]
//
// FILE is a plain file, a .gz file, or either with a line range PATH:START-END.
// Arguments after the flags are replay files too. See package cleanroom/proxy/upstream
// for the request headers that choose faults and framing per request.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cleanroom/proxy/upstream"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "`ADDR` to serve on (port 0 picks a free one)")
	quiet := flag.Bool("quiet", false, "do not log each request")
	opt := upstream.Options{Admin: true}
	opt.Flags(flag.CommandLine)
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: upstream [flags] [FILE...]")
		flag.PrintDefaults()
	}
	flag.Parse()
	opt.Replay = append(opt.Replay, flag.Args()...)

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ready := func(addr string) {
		log.Info("listening", "addr", addr, "replay", len(opt.Replay), "wire", opt.Wire.String())
	}
	if err := run(ctx, *listen, opt, *quiet, log, ready); err != nil {
		log.Error("upstream", "err", err)
		os.Exit(1)
	}
}

// run serves until ctx is done, calling ready with the address once it listens.
func run(ctx context.Context, addr string, opt upstream.Options, quiet bool, log *slog.Logger, ready func(string)) error {
	srv, err := opt.Server()
	if err != nil {
		return err
	}
	if !quiet {
		srv.Log = log
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	ready(ln.Addr().String())
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	srv.Close() // release stalls, so that Shutdown need not wait for their clients
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
