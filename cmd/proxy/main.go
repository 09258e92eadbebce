// Command proxy is cleanroom's gateway: put it in front of an OpenAI-compatible API
// and point clients at it.
//
//	proxy --index DIR --upstream URL [--listen ADDR] [--admin-listen ADDR] [--tls-cert FILE --tls-key FILE]
//	      [--upstream-ca FILE] [--mode block|annotate] [--policy FILE] [--fail-open] [--model-dir DIR]...
//	proxy models check [--policy FILE] [--format text|json] DIR...
//
// Every flag can also be set by an environment variable: CLEANROOM_INDEX,
// CLEANROOM_UPSTREAM, CLEANROOM_LISTEN, ... SIGHUP reloads the index; so does a
// rebuild (the manifest is polled). SIGTERM and SIGINT shut down gracefully,
// letting streams in flight finish.
package main

import (
	"context"
	"crypto/tls"
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

	"cleanroom/proxy"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "models" {
		return runModels(args[1:], os.Stdout, os.Stderr)
	}
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
	var tlsConf *tls.Config
	if opts.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(opts.TLSCert, opts.TLSKey)
		if err != nil {
			fmt.Fprintf(os.Stderr, "proxy: --tls-cert/--tls-key: %v\n", err)
			return 1
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	newServer := func(addr string, h http.Handler) *http.Server {
		return &http.Server{
			Addr:              addr,
			Handler:           h,
			TLSConfig:         tlsConf.Clone(),
			ReadHeaderTimeout: s.Options().ReadHeaderTimeout,
			IdleTimeout:       s.Options().IdleConnTimeout,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
	}
	servers := []*http.Server{newServer(opts.Listen, s.Handler())}
	if h := s.AdminHandler(); h != nil {
		servers = append(servers, newServer(opts.AdminListen, h))
	}
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		ln, err := net.Listen("tcp", srv.Addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "proxy: %v\n", err)
			return 1
		}
		go func() {
			if tlsConf != nil {
				errc <- srv.ServeTLS(ln, "", "")
			} else {
				errc <- srv.Serve(ln)
			}
		}()
	}
	log.Info("listening", "addr", opts.Listen, "admin", opts.AdminListen, "tls", tlsConf != nil,
		"upstream", opts.Upstream, "mode", opts.Mode, "fail_open", opts.FailOpen)

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
			for _, srv := range servers {
				if err := srv.Shutdown(ctx); err != nil {
					log.Warn("shutdown cut requests short", "addr", srv.Addr, "err", err)
				}
			}
			cancel()
			return 0
		}
	}
}
