package proxy

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// chunkFromMap reads a chunk the slow way, from encoding/json's generic decoding,
// as the filter once did: the reference readChunk must agree with.
func chunkFromMap(data []byte) (chunk, bool) {
	var c chunk
	if !json.Valid(data) {
		return c, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	dec.Decode(&v)
	obj, ok := v.(map[string]any)
	if !ok {
		return c, true
	}
	c.object = true
	_, c.hasError = obj["error"]
	chs, ok := obj["choices"].([]any)
	c.isArray = ok
	for _, x := range chs {
		ch, _ := x.(map[string]any)
		if ch == nil {
			c.choices = append(c.choices, chunkChoice{})
			continue
		}
		cc := chunkChoice{object: true, index: toInt(ch["index"])}
		cc.text, _ = ch["text"].(string)
		fr, ok := ch["finish_reason"]
		cc.finish = ok && fr != nil
		delta, _ := ch["delta"].(map[string]any)
		cc.content, _ = delta["content"].(string)
		calls, ok := delta["tool_calls"].([]any)
		cc.tools = ok
		for _, y := range calls {
			tc, _ := y.(map[string]any)
			fn, _ := tc["function"].(map[string]any)
			args, _ := fn["arguments"].(string)
			cc.calls = append(cc.calls, chunkCall{index: toInt(tc["index"]), args: args})
		}
		c.choices = append(c.choices, cc)
	}
	return c, true
}

func sameChunk(a, b chunk) bool {
	if a.object != b.object || a.isArray != b.isArray || a.hasError != b.hasError || len(a.choices) != len(b.choices) {
		return false
	}
	for i := range a.choices {
		x, y := a.choices[i], b.choices[i]
		if len(x.calls) == 0 && len(y.calls) == 0 {
			x.calls, y.calls = nil, nil
		}
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

var chunkSeeds = []string{
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":"int main(void)\n{\n"},"logprobs":null,"finish_reason":null}]}`,
	`{"choices":[{"index":1,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"write","arguments":"{\"code\": \"x\\n\"}"}}]},"finish_reason":null}]}`,
	`{"choices":[{"index":0,"text":"legacy \u00e9\ud83d\ude00 \ud800 \udc00x","finish_reason":"length"}]}`,
	`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5}}`,
	`{"error":{"message":"overloaded","type":"server_error"}}`,
	`{"choices":[{"index":0,"delta":{"content":"a","content":"b"},"index":2.0}]}`,
	`{"choices":[1,"x",null,{"index":-3,"delta":{"tool_calls":[null,{"index":1e2}]}}],"choices":[{"index":7}]}`,
	"{\"choices\":[{\"delta\":{\"content\":\"bad \xff utf8 \xe2\x82\"}}]}",
	`[{"choices":[]}]`, `null`, `{"choices":null}`, ` {"a":[1,2,{"b":[true,false,null]}]} `, `{"a":1}x`, `{"a":01}`, `{"a":"\x"}`, `{"a":-}`, `{"a":1.}`, `{"a":1e}`, `{,}`, `{"a":1,}`, `[1,]`,
}

func TestReadChunkAgreesWithEncodingJSON(t *testing.T) {
	var c chunk
	for _, s := range chunkSeeds {
		want, wantOK := chunkFromMap([]byte(s))
		if ok := readChunk([]byte(s), &c); ok != wantOK || ok && !sameChunk(c, want) {
			t.Errorf("readChunk(%q) = %v, %+v\nwant %v, %+v", s, ok, c, wantOK, want)
		}
	}
	deep := bytes.Repeat([]byte("["), maxDepth+1)
	if readChunk(deep, &c) {
		t.Errorf("nesting deeper than %d accepted", maxDepth)
	}
}

// FuzzReadChunk checks readChunk against encoding/json, and so a chunk shape
// learned from each seed (the shortcut must read what a whole reading does).
func FuzzReadChunk(f *testing.F) {
	for _, s := range chunkSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c chunk
		want, wantOK := chunkFromMap(data)
		if ok := readChunk(data, &c); ok != wantOK || ok && !sameChunk(c, want) {
			t.Fatalf("readChunk(%q) = %v, %+v\nwant %v, %+v", data, ok, c, wantOK, want)
		}
		for _, seed := range chunkSeeds {
			var sh chunkShape
			sh.read([]byte(seed), &c)
			if ok := sh.read(data, &c); ok != wantOK || ok && !sameChunk(c, want) {
				t.Fatalf("after %q, shape read(%q) = %v, %+v\nwant %v, %+v", seed, data, ok, c, wantOK, want)
			}
		}
	})
}

// TestChunkShape reads a stream's chunks through a shape: those that differ only
// in their text take the shortcut, and every one reads as encoding/json reads it.
func TestChunkShape(t *testing.T) {
	pre, post := `{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":`, `},"logprobs":null,"finish_reason":null}]}`
	stream := []string{
		pre + `"int main"` + post,
		pre + `"(void)\n{\u00e9"` + post,  // the shortcut
		pre + `"x", "content":"y"` + post, // a second content: read whole
		pre + `"a" , "role":"assistant"` + post,
		pre + `"\"quoted\""` + post,
		pre + `"unterminated` + post,
		pre + `1` + post,
		`{"id":"c","choices":[{"index":0,"delta":{"content":"a"},"delta":{}}]}`,
		`{"id":"c","choices":[{"index":0,"delta":{"content":"b"},"delta":{}}]}`,
	}
	var sh chunkShape
	var c chunk
	fast := 0
	for _, s := range stream {
		if sh.prefix != nil && bytes.HasPrefix([]byte(s), sh.prefix) && bytes.HasSuffix([]byte(s), sh.suffix) {
			fast++
		}
		want, wantOK := chunkFromMap([]byte(s))
		if ok := sh.read([]byte(s), &c); ok != wantOK || ok && !sameChunk(c, want) {
			t.Errorf("read(%q) = %v, %+v\nwant %v, %+v", s, ok, c, wantOK, want)
		}
	}
	if fast < 2 {
		t.Errorf("%d chunks matched a shape, want at least 2", fast)
	}
}

func BenchmarkReadChunk(b *testing.B) {
	data := []byte(chunkSeeds[0])
	var c chunk
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		readChunk(data, &c)
	}
}
