package sdk_test

import (
	"strings"
	"testing"

	"cleanroom/proxy/upstream"
)

// TestAgentKernel has the upstream regurgitate the kernel scheduler's __schedule,
// found by its definition line, in each agent wire format: as text, as a function
// call's arguments, as an apply_patch patch and as Messages thinking, streamed and
// whole, and checks what the clients get of it through the proxy.
func TestAgentKernel(t *testing.T) {
	ci, coreC := kernelCorpus(t)
	fn, ok := cFunction(coreC, "static void __sched notrace __schedule(unsigned int sched_mode)")
	if !ok {
		t.Fatal("__schedule is not in kernel/sched/core.c")
	}
	if n := strings.Count(fn, "\n"); n < 60 {
		t.Fatalf("__schedule is %d lines, want at least 60", n)
	}
	// The lines a citation must lie in, from the installed core.c: they move between
	// the package's versions.
	first := 1 + strings.Count(coreC[:strings.Index(coreC, fn)], "\n")
	last := first + strings.Count(fn, "\n") - 1
	within := func(t *testing.T, got *agentReceived, c agentCase) {
		t.Helper()
		for _, m := range got.CopyleftMatches {
			if m.StartLine < first || m.EndLine > last {
				t.Errorf("a copyleft_match cites lines %d-%d, want within __schedule's %d-%d: %+v", m.StartLine, m.EndLine, first, last, m)
			}
		}
	}
	const path = "kernel/sched/core.c"
	text := agentCase{"text", "block", agentReply{Content: upstream.Markdown("c", fn)}, partContent, path}
	call := agentCase{"tool_call", "block", agentReply{Content: "I will write it to sched.c.",
		ToolCalls: []agentCall{{"write_file", writeFileArgs("sched.c", fn)}}}, partTool, path}
	patch := agentCase{"custom_tool_call", "block", agentReply{Content: "Applying the patch.",
		CustomToolCalls: []agentCustom{{"apply_patch", addFilePatch("sched.c", fn)}}}, partCustom, path}
	thinking := agentCase{"thinking", "block", agentReply{Reasoning: "From memory:\n\n" + upstream.Markdown("c", fn),
		Content: "Here it is."}, partReason, path}
	apis := []struct {
		api     string
		clients []agentClient
		cases   []agentCase
	}{
		{apiResponses, []agentClient{{"responses/node/stream", true, nodeResponses}, {"responses/go/stream", true, goResponses}},
			[]agentCase{text, call, patch}},
		{apiResponses, []agentClient{{"responses/go/whole", false, goResponses}}, []agentCase{text, call}},
		{apiMessages, []agentClient{{"messages/node/stream", true, nodeMessages("")}}, []agentCase{text, call, thinking}},
		{apiMessages, []agentClient{{"messages/node/whole", false, nodeMessages("")}}, []agentCase{text}},
		{apiOllama, []agentClient{{"ollama/chat/stream", true, nodeOllama("chat")}, {"ollama/chat/whole", false, nodeOllama("chat")},
			{"ollama/generate/stream", true, nodeOllama("generate")}, {"ollama/generate/whole", false, nodeOllama("generate")}},
			[]agentCase{text}},
	}
	for _, a := range apis {
		runAgentCases(t, ci, a.api, a.clients, a.cases, within)
	}
}
