// Package sdk holds end-to-end tests of the proxy driven by the official client
// libraries: the openai, @anthropic-ai/sdk and ollama npm packages (scripts in node/,
// run by the Go tests through node) and github.com/openai/openai-go. The tests start
// the test upstream and the proxy in-process and check what a real client receives:
// that a blocked choice ends with finish_reason "content_filter" and a citation the
// client can read, that no run of indexed code long enough to be found reaches it,
// and that clean completions and annotated ones arrive exactly as the upstream sent
// them.
//
// The agents_*_test.go files do the same for the other APIs the proxy checks: the
// Responses API (openai's responses.create, openai-go's Responses.New and
// NewStreaming), Anthropic Messages (messages.create and the messages.stream()
// helper) and Ollama's /api/chat and /api/generate: copied code as text, as a
// function call's arguments, as an apply_patch patch of a custom tool call, as a
// tool_use input and as thinking is never received; the answer ends as its API says
// it was stopped (response.incomplete with content_filter, stop_reason "refusal",
// done_reason "content_filter"), with copyleft_matches and, for Responses text, a
// url_citation annotation.
//
// The package has no code of its own. The Node tests skip unless node is installed
// and node/node_modules is (make deps runs npm ci there); the kernel tests skip
// unless the Debian package linux-source-6.1 is installed, and with -short.
package sdk
