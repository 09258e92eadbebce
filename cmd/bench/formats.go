package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"time"
)

// A benchAPI is one wire format the gateway is measured in: where a streaming
// request goes, its body, how a whole stream ends, and the text a client reads.
type benchAPI struct {
	name string
	path string
	body []byte
	// end is the last event of a whole stream (a prefix of it, when long).
	end  []byte
	text func(body []byte) string
	// render turns the content into the events an upstream streams.
	render func(content string) [][]byte
}

var chatAPI = &benchAPI{name: "chat completions", path: "/v1/chat/completions", body: chatRequest,
	end: []byte("data: [DONE]\n\n"), text: contentOf}

var responsesAPI = &benchAPI{name: "Responses", path: "/v1/responses",
	body: []byte(`{"model":"bench-model","stream":true,"input":"Write an HTTP server."}`),
	end:  []byte("event: response.completed\n"), text: sseText("response.output_text.delta", func(ev map[string]any) any { return ev["delta"] }),
	render: renderResponses}

var messagesAPI = &benchAPI{name: "Anthropic Messages", path: "/v1/messages",
	body: []byte(`{"model":"bench-model","max_tokens":4096,"stream":true,"messages":[{"role":"user","content":"Write an HTTP server."}]}`),
	end:  []byte("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"),
	text: sseText("content_block_delta", func(ev map[string]any) any {
		d, _ := ev["delta"].(map[string]any)
		return d["text"]
	}), render: renderMessages}

// sseText returns a function that joins the text of the events of type typ.
func sseText(typ string, text func(map[string]any) any) func([]byte) string {
	return func(body []byte) string {
		var b strings.Builder
		for _, line := range strings.Split(string(body), "\n") {
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var ev map[string]any
			if json.Unmarshal([]byte(data), &ev) == nil && ev["type"] == typ {
				s, _ := text(ev).(string)
				b.WriteString(s)
			}
		}
		return b.String()
	}
}

// sseEvent renders one named server-sent event.
func sseEvent(obj map[string]any) []byte {
	b, _ := json.Marshal(obj)
	return fmt.Appendf(nil, "event: %s\ndata: %s\n\n", obj["type"], b)
}

// renderResponses streams content as the Responses API does: one message item,
// deltas of 1 to 3 tokens, the done events repeating the text, response.completed.
func renderResponses(content string) [][]byte {
	var evs [][]byte
	ev := func(obj map[string]any) {
		obj["sequence_number"] = len(evs)
		evs = append(evs, sseEvent(obj))
	}
	resp := func(status string, output []any) map[string]any {
		return map[string]any{"id": "resp_bench", "object": "response", "created_at": 1700000000, "status": status,
			"model": "bench-model", "output": output, "error": nil, "incomplete_details": nil}
	}
	ev(map[string]any{"type": "response.created", "response": resp("in_progress", []any{})})
	ev(map[string]any{"type": "response.in_progress", "response": resp("in_progress", []any{})})
	item := map[string]any{"id": "msg_bench", "type": "message", "status": "in_progress", "role": "assistant", "content": []any{}}
	ev(map[string]any{"type": "response.output_item.added", "output_index": 0, "item": item})
	ev(map[string]any{"type": "response.content_part.added", "item_id": "msg_bench", "output_index": 0, "content_index": 0,
		"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}})
	for _, p := range pieces(content, 1) {
		ev(map[string]any{"type": "response.output_text.delta", "item_id": "msg_bench", "output_index": 0, "content_index": 0,
			"delta": p, "logprobs": []any{}})
	}
	ev(map[string]any{"type": "response.output_text.done", "item_id": "msg_bench", "output_index": 0, "content_index": 0,
		"text": content, "logprobs": []any{}})
	part := map[string]any{"type": "output_text", "text": content, "annotations": []any{}}
	ev(map[string]any{"type": "response.content_part.done", "item_id": "msg_bench", "output_index": 0, "content_index": 0, "part": part})
	done := map[string]any{"id": "msg_bench", "type": "message", "status": "completed", "role": "assistant", "content": []any{part}}
	ev(map[string]any{"type": "response.output_item.done", "output_index": 0, "item": done})
	ev(map[string]any{"type": "response.completed", "response": resp("completed", []any{done})})
	return evs
}

// renderMessages streams content as Anthropic's Messages API does.
func renderMessages(content string) [][]byte {
	evs := [][]byte{
		sseEvent(map[string]any{"type": "message_start", "message": map[string]any{"id": "msg_bench", "type": "message",
			"role": "assistant", "model": "bench-model", "content": []any{}, "stop_reason": nil, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": 10, "output_tokens": 1}}}),
		sseEvent(map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}}),
		sseEvent(map[string]any{"type": "ping"}),
	}
	for _, p := range pieces(content, 1) {
		evs = append(evs, sseEvent(map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": p}}))
	}
	return append(evs,
		sseEvent(map[string]any{"type": "content_block_stop", "index": 0}),
		sseEvent(map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil},
			"usage": map[string]any{"output_tokens": 500}}),
		[]byte("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
}

// gatewayFormats measures the throughput of the other wire formats as gateway
// measures chat's: the same content, the same load, against a plain ReverseProxy
// on the same stream, in alternating rounds.
func gatewayFormats(c *config, s *section, content string) error {
	for _, api := range []*benchAPI{responsesAPI, messagesAPI} {
		fu := &fastUpstream{content: content, release: make(chan struct{}), events: api.render(content)}
		fu.holdAfter = len(fu.events) / 2
		up := httptest.NewServer(fu)
		ts, err := targets(c, up)
		if err != nil {
			up.Close()
			return err
		}
		err = formatRounds(c, s, api, content, ts[1:])
		for _, t := range ts {
			t.close()
		}
		up.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", api.name, err)
		}
	}
	return nil
}

func formatRounds(c *config, s *section, api *benchAPI, content string, ts []*target) error {
	for _, t := range ts {
		t.api = api
		_, body, err := t.complete(false)
		if err != nil {
			return err
		}
		if got := api.text(body); got != content {
			return fmt.Errorf("%s changed the content (%d bytes, want %d)", t.name, len(got), len(content))
		}
	}
	thr, err := throughputRounds(c, ts)
	if err != nil {
		return err
	}
	plain := median(thr["plain ReverseProxy"])
	s.row(api.name+", plain ReverseProxy: completions/s", fmt.Sprintf("%.0f", plain), "", "", true, "")
	for _, mode := range []string{"annotate", "block"} {
		name := "cleanroom " + mode
		ratio := median(thr[name]) / plain
		want := map[string]float64{"annotate": 0.8, "block": 0.7}[mode]
		s.row(api.name+", "+name+": completions/s", fmt.Sprintf("%.0f (%.2fx)", median(thr[name]), ratio),
			fmt.Sprintf("plain: %.0f", plain), fmt.Sprintf(">= %.1fx", want), ratio >= want, pct(ratio, want))
	}
	return nil
}

// throughputRounds measures the completions per second of each target with 8
// clients for a second, in c.rounds rounds after a warm-up, the targets' order
// rotating each round, and returns each target's figures by its name.
func throughputRounds(c *config, ts []*target) (map[string][]float64, error) {
	thr := map[string][]float64{}
	for round := range c.rounds + 1 {
		for i := range ts {
			t := ts[(i+round)%len(ts)]
			n, err := load(t, 8, time.Second)
			if err != nil {
				return nil, fmt.Errorf("round %d: %w", round, err)
			}
			if round > 0 { // round 0 warms up
				thr[t.name] = append(thr[t.name], n)
			}
		}
	}
	return thr, nil
}
