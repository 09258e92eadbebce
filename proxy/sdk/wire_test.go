package sdk_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"cleanroom/proxy/upstream"
)

// TestClientsWire blocks a choice of streams framed as servers other than OpenAI's
// frame them (upstream.Wire): CRLF line ends, keep-alive comments, event names,
// "data:" without a space, ASCII-escaped JSON, one write per event.
func TestClientsWire(t *testing.T) {
	wires := []string{"crlf,nospace,ascii", "comments", "events", "whole"}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for i, wire := range wires {
				for _, endpoint := range []string{"chat", "completions"} {
					t.Run(wire+"/"+endpoint, func(t *testing.T) {
						t.Parallel()
						replies := []reply{gplAnswer(3, 2, 50), {text: original}}
						up := newUpstream(int64(10+i), replies[0].text, replies[1].text)
						var err error
						if up.Wire, err = upstream.ParseWire(wire); err != nil {
							t.Fatal(err)
						}
						e := startEnv(t, gen, "block", up)
						got := c.mustSend(t, e.api, request{endpoint, true, len(replies), "walk the list"})
						checkChoices(t, gen, "block", got, replies)
					})
				}
			}
		})
	}
}

// TestKeepAliveFirst has the upstream open its stream with a keep-alive comment, as
// some gateways do (": OPENROUTER PROCESSING"), and send the rest at once, as a
// server does that answers faster than the proxy reads: the text before the copied
// code must still reach the client.
func TestKeepAliveFirst(t *testing.T) {
	e := newEnv(t, gen, "block", 3, gplAnswer(4, 5, 60).text)
	body, _ := json.Marshal(map[string]any{"model": "test-model", "stream": true,
		"messages": []any{map[string]any{"role": "user", "content": "walk the list"}}})
	resp, err := http.Post(e.upURL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	recorded, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	stream := append([]byte(": keep-alive\n\n"), recorded...)
	replay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write(stream)
	}))
	defer replay.Close()
	api := startProxy(t, gen, "block", replay.URL)
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			got := c.mustSend(t, api, request{"chat", true, 1, "walk the list"})
			checkChoices(t, gen, "block", got, []reply{gplAnswer(4, 5, 60)})
		})
	}
}
