// Package sdk holds end-to-end tests of the proxy driven by the official OpenAI
// client libraries: the openai npm package (scripts in node/, run by the Go tests
// through node) and github.com/openai/openai-go. The tests start the test upstream
// and the proxy in-process and check what a real client receives: that a blocked
// choice ends with finish_reason "content_filter" and a citation the client can read,
// that no run of indexed code long enough to be found reaches it, and that clean
// completions and annotated ones arrive exactly as the upstream sent them.
//
// The package has no code of its own. The Node tests skip unless node is installed
// and node/node_modules is (make deps runs npm ci there); the kernel tests skip
// unless the Debian package linux-source-6.1 is installed, and with -short.
package sdk
