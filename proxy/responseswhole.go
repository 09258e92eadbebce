package proxy

import (
	"fmt"
	"unicode/utf8"
)

// A respSlot is where a text of a whole response is: the object holding its
// string, under key, in output item j.
type respSlot struct {
	j   int
	obj map[string]any
	key string
	t   *text
}

// whole filters a whole Responses response: the upstream's bytes unchanged when
// nothing matches, else the response re-encoded with the texts cut where the
// policy blocks (and every item after the cut dropped; a copying tool call is
// dropped whole), status "incomplete" with incomplete_details.reason
// "content_filter", url_citation annotations on the output text and
// copyleft_matches.
func (w *responsesWire) whole(f *filter, body []byte) ([]byte, error) {
	obj, err := decodeWhole(body)
	if err != nil {
		return nil, err
	}
	if e, ok := obj["error"]; ok && e != nil {
		f.upstreamErr = "status"
		return body, nil
	}
	output, _ := obj["output"].([]any)
	c := f.choice(0)
	var slots []respSlot
	add := func(j int, o map[string]any, key string, k textKind) {
		if s, ok := o[key].(string); ok {
			t := f.newText(c, k)
			f.add(t, s)
			slots = append(slots, respSlot{j, o, key, t})
		}
	}
	for j, x := range output {
		item, _ := x.(map[string]any)
		if item == nil {
			continue
		}
		typ, _ := item["type"].(string)
		switch {
		case typ == "message":
			parts, _ := item["content"].([]any)
			for _, p := range parts {
				if part, _ := p.(map[string]any); part != nil {
					add(j, part, "text", kindContent)
					add(j, part, "refusal", kindContent)
				}
			}
		case typ == "reasoning":
			for _, key := range []string{"summary", "content"} {
				parts, _ := item[key].([]any)
				for _, p := range parts {
					if part, _ := p.(map[string]any); part != nil {
						add(j, part, "text", kindProse)
					}
				}
			}
		case responsesToolField[typ] != "":
			add(j, item, responsesToolField[typ], responsesToolItems[typ])
		case responsesQuietItems[typ]:
		default:
			return nil, fmt.Errorf("cleanroom does not check output items of type %q", typ)
		}
	}
	f.finish(c)
	f.decide(c)
	c.cited = f.citations(c)
	c.final = true
	if c.blocked == nil && len(shown(c.cited)) == 0 {
		return body, nil
	}
	keepItems := len(output)
	if b := c.blocked; b != nil {
		for _, sl := range slots {
			limit := b.limits[sl.t]
			if limit >= sl.t.n {
				continue
			}
			if sl.t.tool || limit == 0 {
				keepItems = sl.j
				break
			}
			sl.obj[sl.key] = sl.obj[sl.key].(string)[:limit]
			if item, _ := output[sl.j].(map[string]any); item != nil {
				if _, ok := item["status"]; ok {
					item["status"] = "incomplete"
				}
			}
			keepItems = sl.j + 1
			break
		}
		obj["status"] = "incomplete"
		obj["incomplete_details"] = map[string]any{"reason": "content_filter"}
	}
	for _, sl := range slots {
		if sl.j >= keepItems || sl.key != "text" || sl.t.tool {
			continue
		}
		sent, _ := sl.obj[sl.key].(string)
		if _, isPart := sl.obj["annotations"]; !isPart && sl.obj["type"] != "output_text" {
			continue // reasoning text takes no annotations
		}
		anns, _ := sl.obj["annotations"].([]any)
		for _, ct := range shown(f.textCitations(sl.t)) {
			start, end := min(ct.start, len(sent)), min(ct.end, len(sent))
			anns = append(anns, urlCitation(ct, utf8.RuneCountInString(sent[:start]), utf8.RuneCountInString(sent[:end])))
		}
		sl.obj["annotations"] = anns
	}
	obj["output"] = output[:keepItems]
	obj["copyleft_matches"] = shown(c.cited)
	return encodeJSON(obj)
}
