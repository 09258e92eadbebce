// Package promtest checks the proxy's metrics with Prometheus' own tools: promtool
// lints the exposition, and a real Prometheus scrapes the proxy while it serves
// traffic and answers queries over what it stored. It also checks the operations
// kit in deploy/: promtool checks and unit-tests the alerting rules, and every query
// of the Grafana dashboard runs against the real Prometheus. It holds tests only;
// they skip where Debian's prometheus package (which make deps installs) is missing.
package promtest
