package sdk_test

import (
	"context"
	"encoding/json"
	"sort"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/respjson"
	"github.com/openai/openai-go/v3/packages/ssestream"
)

// goClient sends r to the proxy at api with github.com/openai/openai-go and returns
// what it received, or the error the SDK returned. Streamed chat completions also go
// through the SDK's ChatCompletionAccumulator, which must agree with the chunks.
func goClient(t *testing.T, api string, r request) (*received, error) {
	t.Helper()
	client := openai.NewClient(option.WithBaseURL(api+"/"), option.WithAPIKey("sk-test"), option.WithMaxRetries(0))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rec := &recorder{byIndex: map[int]*choice{}}
	switch {
	case r.endpoint == "chat" && r.stream:
		var acc openai.ChatCompletionAccumulator
		stream := client.Chat.Completions.NewStreaming(ctx, chatParams(r))
		err := readStream(stream, func(chunk openai.ChatCompletionChunk) {
			if !acc.AddChunk(chunk) {
				t.Errorf("the ChatCompletionAccumulator rejected a chunk: %s", chunk.RawJSON())
			}
			rec.chunks++
			for _, ch := range chunk.Choices {
				rec.add(t, int(ch.Index), ch.Delta.Content, ch.FinishReason, ch.JSON.ExtraFields)
			}
		})
		if err != nil {
			return nil, err
		}
		for _, ch := range acc.Choices {
			c := rec.choice(int(ch.Index))
			if ch.Message.Content != c.Content || ch.FinishReason != c.FinishReason {
				t.Errorf("the accumulator's choice %d (%q, %q) differs from the chunks' (%q, %q)",
					ch.Index, ch.FinishReason, ch.Message.Content, c.FinishReason, c.Content)
			}
		}
	case r.endpoint == "chat":
		res, err := client.Chat.Completions.New(ctx, chatParams(r))
		if err != nil {
			return nil, err
		}
		rec.chunks++
		for _, ch := range res.Choices {
			rec.add(t, int(ch.Index), ch.Message.Content, ch.FinishReason, ch.JSON.ExtraFields)
		}
	case r.stream:
		stream := client.Completions.NewStreaming(ctx, completionParams(r))
		err := readStream(stream, func(chunk openai.Completion) {
			rec.chunks++
			for _, ch := range chunk.Choices {
				rec.add(t, int(ch.Index), ch.Text, string(ch.FinishReason), ch.JSON.ExtraFields)
			}
		})
		if err != nil {
			return nil, err
		}
	default:
		res, err := client.Completions.New(ctx, completionParams(r))
		if err != nil {
			return nil, err
		}
		rec.chunks++
		for _, ch := range res.Choices {
			rec.add(t, int(ch.Index), ch.Text, string(ch.FinishReason), ch.JSON.ExtraFields)
		}
	}
	return rec.result(), nil
}

func chatParams(r request) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: "test-model", N: openai.Int(int64(r.n)),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(r.prompt)}}
}

func completionParams(r request) openai.CompletionNewParams {
	return openai.CompletionNewParams{Model: "test-model", N: openai.Int(int64(r.n)),
		Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String(r.prompt)}}
}

// readStream passes each event of stream to each, and returns the stream's error.
func readStream[T any](stream *ssestream.Stream[T], each func(T)) error {
	defer stream.Close()
	for stream.Next() {
		each(stream.Current())
	}
	return stream.Err()
}

// recorder reassembles choices from the choice objects of chunks, as the Node
// scripts' Recorder does.
type recorder struct {
	chunks  int
	byIndex map[int]*choice
}

func (rec *recorder) choice(i int) *choice {
	c := rec.byIndex[i]
	if c == nil {
		c = &choice{Index: i}
		rec.byIndex[i] = c
	}
	return c
}

// add takes one choice object: its text, its finish_reason, and the fields the SDK
// does not know, where the proxy's citation is.
func (rec *recorder) add(t *testing.T, i int, text, finish string, extra map[string]respjson.Field) {
	t.Helper()
	c := rec.choice(i)
	c.Content += text
	if finish != "" {
		c.FinishReason = finish
		c.Finishes++
	}
	if f, ok := extra["content_filter_results"]; ok {
		c.ContentFilterResults = nil
		if err := json.Unmarshal([]byte(f.Raw()), &c.ContentFilterResults); err != nil {
			t.Errorf("choice %d: content_filter_results %s: %v", i, f.Raw(), err)
		}
	}
	if f, ok := extra["copyleft_matches"]; ok {
		c.CopyleftMatches = nil
		if err := json.Unmarshal([]byte(f.Raw()), &c.CopyleftMatches); err != nil {
			t.Errorf("choice %d: copyleft_matches %s: %v", i, f.Raw(), err)
		}
	}
}

func (rec *recorder) result() *received {
	r := &received{Chunks: rec.chunks}
	for _, c := range rec.byIndex {
		r.Choices = append(r.Choices, *c)
	}
	sort.Slice(r.Choices, func(i, j int) bool { return r.Choices[i].Index < r.Choices[j].Index })
	return r
}
