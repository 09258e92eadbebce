// Package promtest checks the proxy's metrics with Prometheus' own tools: promtool
// lints the exposition, and a real Prometheus scrapes the proxy while it serves
// traffic and answers queries over what it stored. It holds tests only; they skip
// where Debian's prometheus package (which make deps installs) is missing.
package promtest
