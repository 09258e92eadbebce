// Command proxy is cleanroom's gateway: put it in front of an OpenAI-compatible API
// and point clients at it.
//
//	proxy --index DIR --upstream URL [--listen ADDR] [--mode block|annotate] [--policy FILE] [--fail-open]
//
// Every flag can also be set by an environment variable: CLEANROOM_INDEX,
// CLEANROOM_UPSTREAM, CLEANROOM_LISTEN, ... SIGHUP reloads the index; so does a
// rebuild (the manifest is polled). SIGTERM and SIGINT shut down gracefully,
// letting streams in flight finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"cleanroom/proxy"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	var opts proxy.Options
	opts.Flags(fs)
	grace := fs.Duration("shutdown-grace", 30*time.Second, "how long shutdown waits for requests in flight")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	s, err := proxy.New(opts, log)
	if err != nil {
		fmt.Fprintf(os.Stderr, "proxy: %v\n", err)
		return 1
	}
	defer s.Close()
	srv := &http.Server{
		Addr:              opts.Listen,
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("listening", "addr", opts.Listen, "upstream", opts.Upstream, "mode", opts.Mode, "fail_open", opts.FailOpen)

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGINT, syscall.SIGTERM)
	for {
		select {
		case err := <-errc:
			if !errors.Is(err, http.ErrServerClosed) {
				log.Error("serving failed", "err", err)
				return 1
			}
			return 0
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				s.Reload() // logs and counts a failure; the old index stays
				continue
			}
			log.Info("shutting down", "signal", sig.String())
			ctx, cancel := context.WithTimeout(context.Background(), *grace)
			err := srv.Shutdown(ctx)
			cancel()
			if err != nil {
				log.Warn("shutdown cut requests short", "err", err)
			}
			return 0
		}
	}
}
