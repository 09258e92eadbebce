package sdk_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/respjson"
	"github.com/openai/openai-go/v3/responses"
)

// goResponses sends prompt to the proxy's Responses API with openai-go's
// Responses.New, or Responses.NewStreaming, and returns what it received, as
// responses.mjs records it.
func goResponses(t *testing.T, e *env, stream bool, prompt string) (*agentReceived, error) {
	t.Helper()
	client := openai.NewClient(option.WithBaseURL(e.api+"/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	params := responses.ResponseNewParams{Model: "test-model",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(prompt)}}
	rec := &agentReceived{}
	if !stream {
		res, err := client.Responses.New(ctx, params)
		if err != nil {
			return nil, err
		}
		rec.Raw = append(rec.Raw, json.RawMessage(res.RawJSON()))
		fromGoResponse(t, rec, res)
		text := res.OutputText()
		rec.OutputText = &text
		return rec, nil
	}
	calls := map[string]int{} // item id -> index in ToolCalls, or -1-index in CustomToolCalls
	call := func(id, name, typ string) {
		if _, ok := calls[id]; ok {
			return
		}
		if typ == "custom_tool_call" {
			rec.CustomToolCalls = append(rec.CustomToolCalls, agentCustom{Name: name})
			calls[id] = -len(rec.CustomToolCalls)
		} else {
			rec.ToolCalls = append(rec.ToolCalls, agentCall{Name: name})
			calls[id] = len(rec.ToolCalls) - 1
		}
	}
	var final *responses.Response
	err := readStream(client.Responses.NewStreaming(ctx, params), func(ev responses.ResponseStreamEventUnion) {
		rec.Raw = append(rec.Raw, json.RawMessage(ev.RawJSON()))
		rec.Events = append(rec.Events, ev.Type)
		rec.SequenceNumbers = append(rec.SequenceNumbers, ev.SequenceNumber)
		switch ev.Type {
		case "response.output_text.delta":
			rec.Text += ev.Delta
		case "response.reasoning_text.delta", "response.reasoning_summary_text.delta":
			rec.Reasoning += ev.Delta
		case "response.output_item.added":
			if ev.Item.Type == "function_call" || ev.Item.Type == "custom_tool_call" {
				call(ev.Item.ID, ev.Item.Name, ev.Item.Type)
			}
		case "response.function_call_arguments.delta":
			call(ev.ItemID, "", "function_call")
			if i := calls[ev.ItemID]; i >= 0 {
				rec.ToolCalls[i].Arguments += ev.Delta
			}
		case "response.custom_tool_call_input.delta":
			call(ev.ItemID, "", "custom_tool_call")
			if i := calls[ev.ItemID]; i < 0 {
				rec.CustomToolCalls[-1-i].Input += ev.Delta
			}
		case "response.output_text.annotation.added":
			var a annotation
			if err := json.Unmarshal([]byte(ev.Annotation.RawJSON()), &a); err != nil {
				t.Errorf("annotation %s: %v", ev.Annotation.RawJSON(), err)
			}
			rec.AnnotationEvents = append(rec.AnnotationEvents, a)
		case "response.completed", "response.incomplete", "response.failed":
			r := ev.Response
			final = &r
		}
	})
	if err != nil {
		return nil, err
	}
	if final != nil {
		f := &agentReceived{}
		fromGoResponse(t, f, final)
		rec.Status, rec.IncompleteReason, rec.CopyleftMatches = f.Status, f.IncompleteReason, f.CopyleftMatches
		rec.Annotations = f.Annotations
		rec.Final = &agentFinal{Text: f.Text, Reasoning: f.Reasoning, ToolCalls: f.ToolCalls, CustomToolCalls: f.CustomToolCalls}
	}
	return rec, nil
}

// fromGoResponse reads a response object into rec.
func fromGoResponse(t *testing.T, rec *agentReceived, res *responses.Response) {
	t.Helper()
	rec.Status = string(res.Status)
	rec.IncompleteReason = string(res.IncompleteDetails.Reason)
	rec.CopyleftMatches = extraMatches(t, res.JSON.ExtraFields)
	for _, item := range res.Output {
		switch item.Type {
		case "message":
			for _, part := range item.Content {
				if part.Type == "output_text" {
					rec.Text += part.Text
					rec.Annotations = appendAnnotations(rec.Annotations, part.Annotations)
				}
			}
		case "reasoning":
			for _, part := range item.Content {
				rec.Reasoning += part.Text
			}
			for _, s := range item.Summary {
				rec.Reasoning += s.Text
			}
		case "function_call":
			rec.ToolCalls = append(rec.ToolCalls, agentCall{Name: item.Name, Arguments: item.Arguments.OfString})
		case "custom_tool_call":
			rec.CustomToolCalls = append(rec.CustomToolCalls, agentCustom{Name: item.Name, Input: item.Input})
		}
	}
}

// appendAnnotations appends the annotations openai-go read.
func appendAnnotations(out []annotation, as []responses.ResponseOutputTextAnnotationUnion) []annotation {
	for _, a := range as {
		out = append(out, annotation{Type: a.Type, URL: a.URL, Title: a.Title, StartIndex: int(a.StartIndex), EndIndex: int(a.EndIndex)})
	}
	return out
}

// extraMatches decodes the copyleft_matches among the fields the SDK does not know.
func extraMatches(t *testing.T, extra map[string]respjson.Field) []copyleftMatch {
	t.Helper()
	f, ok := extra["copyleft_matches"]
	if !ok || f.Raw() == "null" {
		return nil
	}
	var ms []copyleftMatch
	if err := json.Unmarshal([]byte(f.Raw()), &ms); err != nil {
		t.Errorf("copyleft_matches %s: %v", f.Raw(), err)
	}
	return ms
}

// goPost POSTs to path under api with openai-go's generic Client.Post.
func goPost(t *testing.T, api, path string) (json.RawMessage, error) {
	t.Helper()
	client := openai.NewClient(option.WithBaseURL(api+"/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var body json.RawMessage
	err := client.Post(ctx, path[1:], map[string]any{"model": "test-model", "input": "hello"}, &body)
	return body, err
}
