package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// FuzzMessagesStream feeds arbitrary upstream bodies through the Messages wire, in
// pieces of any size, streamed and whole: it never panics, the stream ends, and no
// text a client reads (text, thinking, tool input, a block that comes whole) holds
// a run of indexed tokens at or over the threshold.
func FuzzMessagesStream(f *testing.F) {
	s, gpl := fuzzSetup(f)
	code := excerpt(gpl[3], 5, 40)
	for i, blocks := range [][]msgSpec{
		{{Type: "text", Text: markdownAnswer(code)}},
		{{Type: "thinking", Text: "Recall:\n\n```c\n" + code + "```\n"}, {Type: "text", Text: "Done."}},
		{{Type: "text", Text: "Writing it.\n"}, {Type: "tool_use", Name: "w", Input: map[string]any{"content": code}}},
		{{Type: "redacted_thinking"}, {Type: "text", Text: "A clean answer, unrelated to anything."}},
	} {
		body := msgSSE(blocks, "end_turn")
		f.Add(body, uint8(i*5+1))
		if i < 3 {
			// The check sees the code the seed carries: unfiltered, it fails.
			thr, n := fuzzServer.ix.Params().Threshold(), 0
			for _, text := range messagesTexts(body, true) {
				n = max(n, fuzzLongest(text), fuzzLongest("```c\n"+text+"\n```\n"))
			}
			if n < thr {
				f.Fatalf("seed %d: the check finds a run of %d in it, not the code", i, n)
			}
		}
	}
	// A block that comes whole, and text in a start.
	f.Add([]byte(msgUpstreamStart+"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"web_search_tool_result\",\"content\":[{\"text\":"+
		string(must(json.Marshal(code)))+"}]}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}"), uint8(9))
	f.Add([]byte("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":"+
		string(must(json.Marshal(markdownAnswer(code))))+"}}\n\n"), uint8(3))
	f.Add([]byte(msgUpstreamStart+"data: [DONE]\n\n:\n\nevent: ping\n\n"), uint8(2))
	f.Fuzz(func(t *testing.T, body []byte, step uint8) {
		streamed, whole := fuzzStream(t, s, messagesFormat, []byte(`{"model":"m","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"q"}]}`), body, int(step))
		thr := fuzzServer.ix.Params().Threshold()
		for _, text := range messagesTexts(streamed, true) {
			if got := max(fuzzLongest(text), fuzzLongest("```c\n"+text+"\n```\n")); got >= thr {
				t.Fatalf("the client got a run of %d indexed tokens (threshold %d) from\n%q\nout\n%q", got, thr, body, streamed)
			}
		}
		for _, text := range messagesTexts(whole, false) {
			if got := max(fuzzLongest(text), fuzzLongest("```c\n"+text+"\n```\n")); got >= thr && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
				t.Fatalf("the whole message gave a run of %d indexed tokens:\n%q", got, whole)
			}
		}
	})
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// messagesTexts returns the texts a Messages client reads, as an SDK accumulates
// them: per block of a stream (dispatched on the data's type) its text, thinking,
// or the strings of its input JSON; the strings of any other block; or those of a
// whole message's content.
func messagesTexts(b []byte, stream bool) []string {
	var out []string
	strs := func(v any) string {
		j, _ := json.Marshal(v)
		return string((&jsonStrings{}).feed(j))
	}
	if !stream {
		var obj map[string]any
		if json.Unmarshal(b, &obj) == nil {
			if cs, ok := obj["content"].([]any); ok {
				for _, c := range cs {
					out = append(out, blockStrings(c, strs))
				}
			} else {
				out = append(out, strs(obj["content"]))
			}
		}
		return out
	}
	texts := map[float64]*strings.Builder{}
	inputs := map[float64]*strings.Builder{}
	get := func(m map[float64]*strings.Builder, i float64) *strings.Builder {
		if m[i] == nil {
			m[i] = &strings.Builder{}
		}
		return m[i]
	}
	var r sseReader
	var evs []sseEvent
	r.feed(b, func(ev sseEvent) error { evs = append(evs, ev); return nil })
	for _, ev := range evs {
		var m struct {
			Type         string         `json:"type"`
			Index        float64        `json:"index"`
			ContentBlock map[string]any `json:"content_block"`
			Delta        map[string]any `json:"delta"`
			Message      map[string]any `json:"message"`
		}
		if json.Unmarshal(ev.data, &m) != nil {
			continue
		}
		switch m.Type {
		case "message_start":
			out = append(out, strs(m.Message["content"]))
		case "content_block_start":
			for _, k := range []string{"text", "thinking"} {
				if s, ok := m.ContentBlock[k].(string); ok {
					get(texts, m.Index).WriteString(s)
				}
			}
			if in, ok := m.ContentBlock["input"]; ok {
				j, _ := json.Marshal(in)
				get(inputs, m.Index).Write(j)
			}
			out = append(out, blockStrings(m.ContentBlock, strs))
		case "content_block_delta":
			for _, k := range []string{"text", "thinking"} {
				if s, ok := m.Delta[k].(string); ok {
					get(texts, m.Index).WriteString(s)
				}
			}
			if s, ok := m.Delta["partial_json"].(string); ok {
				get(inputs, m.Index).WriteString(s)
			}
		}
	}
	for _, t := range texts {
		out = append(out, t.String())
	}
	for _, in := range inputs {
		out = append(out, string((&jsonStrings{}).feed([]byte(in.String()))))
	}
	return out
}

// blockStrings returns what a client reads of a content block as it starts or
// comes whole: the text of a text block, the thinking of a thinking block, the
// strings of a tool's input, every string of a block of another type.
func blockStrings(v any, strs func(any) string) string {
	b, _ := v.(map[string]any)
	if b == nil {
		return strs(v)
	}
	switch b["type"] {
	case "text", "thinking":
		t, _ := b["text"].(string)
		th, _ := b["thinking"].(string)
		if b["type"] == "thinking" {
			return th
		}
		return t
	case "redacted_thinking":
		return ""
	case "tool_use", "server_tool_use", "mcp_tool_use":
		return strs(b["input"])
	}
	return strs(b)
}
