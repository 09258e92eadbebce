package proxy

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestSSEReader(t *testing.T) {
	stream := "data: {\"a\":1}\n\n" +
		": keep-alive\n\n" +
		"event: message\r\ndata: line1\r\ndata: line2\r\n\r\n" +
		"data: cr only\r\rdata:nospace\n\n" +
		"id: 7\nretry: 100\n\n" +
		"data: [DONE]\n\n"
	want := []struct{ raw, data string }{
		{"data: {\"a\":1}\n\n", `{"a":1}`},
		{": keep-alive\n\n", ""},
		{"event: message\r\ndata: line1\r\ndata: line2\r\n\r\n", "line1\nline2"},
		{"data: cr only\r\r", "cr only"},
		{"data:nospace\n\n", "nospace"},
		{"id: 7\nretry: 100\n\n", ""},
		{"data: [DONE]\n\n", "[DONE]"},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := 0; trial < 300; trial++ {
		var r sseReader
		var got []sseEvent
		for off := 0; off < len(stream); {
			n := min(1+rng.IntN(9), len(stream)-off)
			if err := r.feed([]byte(stream[off:off+n]), func(e sseEvent) error { got = append(got, e); return nil }); err != nil {
				t.Fatal(err)
			}
			off += n
		}
		if rest := r.rest(); len(rest.raw) != 0 {
			t.Fatalf("trial %d: left over %q", trial, rest.raw)
		}
		if len(got) != len(want) {
			t.Fatalf("trial %d: %d events, want %d: %q", trial, len(got), len(want), got)
		}
		var all bytes.Buffer
		for i, e := range got {
			all.Write(e.raw)
			if string(e.raw) != want[i].raw || string(e.data) != want[i].data {
				t.Fatalf("trial %d event %d: raw %q data %q; want %q %q", trial, i, e.raw, e.data, want[i].raw, want[i].data)
			}
		}
		if all.String() != stream {
			t.Fatalf("events do not add up to the stream")
		}
	}
}

func TestSSEReaderRestAndLimit(t *testing.T) {
	var r sseReader
	r.feed([]byte("data: {\"x\":2}\ndata: y"), func(sseEvent) error { t.Fatal("no event expected"); return nil })
	if ev := r.rest(); string(ev.data) != "{\"x\":2}\ny" {
		t.Errorf("rest data %q", ev.data)
	}
	r = sseReader{maxSize: 100}
	if err := r.feed([]byte("data: "+strings.Repeat("x", 200)), func(sseEvent) error { return nil }); err != errEventTooLarge {
		t.Errorf("oversized event: %v", err)
	}
}
