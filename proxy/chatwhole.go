package proxy

import (
	"bytes"
	"encoding/json"
)

// whole filters a whole chat or legacy completion: the upstream's bytes unchanged
// when no choice has a match to cite, else the response re-encoded with blocked
// choices cut and matches cited.
func (w *chatWire) whole(f *filter, body []byte) ([]byte, error) {
	obj, err := decodeWhole(body)
	if err != nil {
		return nil, err
	}
	if _, ok := obj["error"]; ok {
		f.upstreamErr = "status" // an error in place of a completion
	}
	chs, _ := obj["choices"].([]any)
	changed := false
	for _, x := range chs {
		ch, _ := x.(map[string]any)
		if ch == nil {
			continue
		}
		c := f.choice(toInt(ch["index"]))
		msg, _ := ch["message"].(map[string]any)
		if s, ok := ch["text"].(string); ok {
			f.add(f.contentText(c), s)
		}
		if s, ok := msg["content"].(string); ok {
			f.add(f.contentText(c), s)
		}
		calls, _ := msg["tool_calls"].([]any)
		for k, y := range calls {
			tc, _ := y.(map[string]any)
			fn, _ := tc["function"].(map[string]any)
			args, _ := fn["arguments"].(string)
			f.add(f.toolText(c, k), args)
		}
		f.finish(c)
		f.decide(c)
		c.cited = f.citations(c)
		switch {
		case c.blocked != nil:
			cutWhole(c, ch, msg, calls)
			annotate(ch, c.cited, true)
			changed = true
		case len(shown(c.cited)) > 0:
			annotate(ch, c.cited, false)
			changed = true
		}
		c.final = true
	}
	if !changed {
		return body, nil
	}
	return encodeJSON(obj)
}

// cutWhole cuts a blocked choice of a whole response: its content ends before the
// copied run, and the tool call the run is in, and those after it, are dropped (a
// tool call cut short is one no client should run).
func cutWhole(c *choice, ch, msg map[string]any, calls []any) {
	ch["finish_reason"] = "content_filter"
	if c.blocked.t == c.content {
		if s, ok := ch["text"].(string); ok {
			ch["text"] = s[:c.blocked.cut]
		} else if s, ok := msg["content"].(string); ok {
			msg["content"] = s[:c.blocked.cut]
		}
		if len(calls) > 0 {
			delete(msg, "tool_calls")
		}
		return
	}
	for k := range calls {
		if c.tools[k] == c.blocked.t {
			if k == 0 {
				delete(msg, "tool_calls")
			} else {
				msg["tool_calls"] = calls[:k]
			}
			return
		}
	}
}

// encodeJSON encodes v as a whole response body: HTML characters as they are.
func encodeJSON(v any) ([]byte, error) {
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
