package proxy

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzSSEReader feeds arbitrary bytes to the SSE reader, whole and in pieces cut
// where the fuzzer says: it never panics, it reads the same events either way, and
// the events' raw bytes and what is left add up to the input exactly (an event
// passed on unchanged is byte for byte what came).
func FuzzSSEReader(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\n: keep-alive\n\nevent: x\r\ndata: l1\r\ndata: l2\r\n\r\ndata: [DONE]\n\n"), uint8(3), 0)
	f.Add([]byte("data: cr\r\rdata:nospace\n\nid: 7\nretry: 1\n\ndata: partial"), uint8(1), 64)
	f.Add([]byte("\r\n\r\n\n\r\r\n:x\r"), uint8(2), 0)
	f.Add([]byte("data: "+string(make([]byte, 300))), uint8(7), 100)
	f.Fuzz(func(t *testing.T, data []byte, step uint8, limit int) {
		if limit < 0 || limit > 1<<20 {
			limit = 0
		}
		read := func(pieces [][]byte) ([]sseEvent, sseEvent, error) {
			r := sseReader{maxSize: limit}
			var got []sseEvent
			for _, p := range pieces {
				err := r.feed(p, func(e sseEvent) error {
					got = append(got, sseEvent{raw: bytes.Clone(e.raw), data: bytes.Clone(e.data)})
					return nil
				})
				if err != nil {
					return got, sseEvent{}, err
				}
			}
			rest := r.rest()
			return got, sseEvent{raw: bytes.Clone(rest.raw), data: bytes.Clone(rest.data)}, nil
		}
		whole, wholeRest, werr := read([][]byte{data})
		var pieces [][]byte
		n := int(step%16) + 1
		for off := 0; off < len(data); off += n {
			pieces = append(pieces, data[off:min(off+n, len(data))])
		}
		split, splitRest, serr := read(pieces)
		if werr != nil || serr != nil {
			if limit == 0 || !errors.Is(werr, errEventTooLarge) && werr != nil || !errors.Is(serr, errEventTooLarge) && serr != nil {
				t.Fatalf("errors %v, %v with limit %d", werr, serr, limit)
			}
			return // too large: fed whole, more may have been buffered before the check
		}
		if len(whole) != len(split) {
			t.Fatalf("%d events whole, %d in pieces of %d", len(whole), len(split), n)
		}
		var all bytes.Buffer
		for i := range whole {
			if !bytes.Equal(whole[i].raw, split[i].raw) || !bytes.Equal(whole[i].data, split[i].data) ||
				(whole[i].data == nil) != (split[i].data == nil) {
				t.Fatalf("event %d differs: %q %q vs %q %q", i, whole[i].raw, whole[i].data, split[i].raw, split[i].data)
			}
			if len(whole[i].raw) == 0 {
				t.Fatalf("event %d is empty", i)
			}
			all.Write(whole[i].raw)
		}
		// A "\r" at the very end may still be followed by "\n": the whole and the split
		// reader agree on what they hold back, and together it is all the input.
		if !bytes.Equal(wholeRest.raw, splitRest.raw) || !bytes.Equal(wholeRest.data, splitRest.data) {
			t.Fatalf("rest differs: %q vs %q", wholeRest.raw, splitRest.raw)
		}
		all.Write(wholeRest.raw)
		if !bytes.Equal(all.Bytes(), data) {
			t.Fatalf("events and rest do not add up to the input:\n got %q\nwant %q", all.Bytes(), data)
		}
	})
}

// FuzzParseRequest feeds arbitrary bodies to the completion request parser, for
// both endpoints: it never panics, and what it accepts has a sane n and no more
// context than it may hold.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"model":"m","stream":true,"n":2,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":[{"type":"text","text":"x"}]}]}`))
	f.Add([]byte(`{"model":"m","prompt":["a","b",[1,2]],"suffix":"s","n":null}`))
	f.Add([]byte(`{"messages":[{"role":"user","content":null}],"n":128}`))
	f.Add([]byte(`{"model":5}`))
	f.Add([]byte("{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000\\ud800\"}]}"))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, ep := range []string{endpointChat, endpointCompletions} {
			r, err := parseRequest(ep, body)
			if err != nil {
				var br *badRequest
				if !errors.As(err, &br) || br.msg == "" {
					t.Fatalf("%s: error %v is not a bad request with a message", ep, err)
				}
				continue
			}
			if r.n < 1 || r.n > maxN {
				t.Fatalf("%s: accepted n = %d", ep, r.n)
			}
			if len(r.context) > contextBytes {
				t.Fatalf("%s: context of %d bytes", ep, len(r.context))
			}
		}
	})
}
