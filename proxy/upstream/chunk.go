package upstream

import (
	"encoding/json"
	"iter"
	"math/rand/v2"
	"unicode/utf8"
)

// chunkEnvelope is the part of a streamed chunk shared by both endpoints.
type chunkEnvelope struct {
	ID                string          `json:"id"`
	Object            string          `json:"object"`
	Created           int64           `json:"created"`
	Model             string          `json:"model"`
	ServiceTier       string          `json:"service_tier,omitempty"`
	SystemFingerprint string          `json:"system_fingerprint"`
	Choices           any             `json:"choices,omitempty"`
	Usage             json.RawMessage `json:"usage,omitempty"`
}

type chunkChoice struct {
	Index        int       `json:"index"`
	Delta        delta     `json:"delta"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

// delta is a chat delta. Content and Refusal are raw so that a first delta can carry
// "content":"" or "content":null as the API does, and later ones leave them out.
type delta struct {
	Role      string          `json:"role,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"`
	Refusal   json.RawMessage `json:"refusal,omitempty"`
	ToolCalls []toolCallDelta `json:"tool_calls,omitempty"`
}

type toolCallDelta struct {
	Index    int           `json:"index"`
	ID       string        `json:"id,omitempty"`
	Type     string        `json:"type,omitempty"`
	Function functionDelta `json:"function"`
}

type functionDelta struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

var jsonNull = json.RawMessage("null")

// choice stages, in order.
const (
	stageRole = iota
	stageContent
	stageCall // a tool call's header
	stageArgs // a tool call's arguments
	stageFinish
	stageDone
)

// choiceCursor walks one choice's reply, one delta at a time.
type choiceCursor struct {
	index int
	reply Reply
	stage int
	pos   int // byte offset into the content or the current call's arguments
	call  int
}

// chunker produces the chunks of a streamed answer lazily, so that a huge reply is
// never held as events, and interleaves the deltas of several choices at random.
type chunker struct {
	a       *answer
	rng     *rand.Rand
	legacy  bool
	choices []*choiceCursor
	live    []*choiceCursor
	// prefix and suffix surround the one choice of a chunk: the envelope is the same
	// for every chunk and is encoded once.
	prefix, suffix []byte
}

func newChunker(a *answer, rng *rand.Rand) *chunker {
	c := &chunker{a: a, rng: rng, legacy: a.req.Path == LegacyPath}
	for i, r := range a.replies {
		cur := &choiceCursor{index: i, reply: r}
		if c.legacy {
			cur.stage = stageContent
			cur.reply.ToolCalls = nil
		}
		c.choices = append(c.choices, cur)
	}
	c.live = append(c.live, c.choices...)
	head := marshal(c.envelope(nil))
	c.prefix = append(head[:len(head)-1:len(head)-1], `,"choices":[`...)
	c.suffix = []byte("]}")
	if a.req.IncludeUsage {
		c.suffix = []byte(`],"usage":null}`)
	}
	return c
}

// envelope returns a chunk's envelope with the given choices, and no usage.
func (c *chunker) envelope(choices any) chunkEnvelope {
	e := chunkEnvelope{ID: c.a.id, Object: "chat.completion.chunk", Created: c.a.created, Model: c.a.req.Model,
		ServiceTier: "default", SystemFingerprint: fingerprint, Choices: choices}
	if c.legacy {
		e.Object, e.ServiceTier = "text_completion", ""
	}
	return e
}

// next returns the JSON of the next chunk, or false when every choice has finished.
func (c *chunker) next() ([]byte, bool) {
	for len(c.live) > 0 {
		i := c.rng.IntN(len(c.live))
		cur := c.live[i]
		var choice any
		if c.legacy {
			choice = c.legacyStep(cur)
		} else {
			choice = c.chatStep(cur)
		}
		if cur.stage == stageDone {
			c.live = append(c.live[:i], c.live[i+1:]...)
		}
		if choice != nil {
			b := append([]byte(nil), c.prefix...)
			b = append(b, marshal(choice)...)
			return append(b, c.suffix...), true
		}
	}
	return nil, false
}

// chatEvents are the chunks of a streamed chat or legacy answer, and the usage chunk
// if asked.
func chatEvents(a *answer, rng *rand.Rand) iter.Seq[event] {
	return func(yield func(event) bool) {
		ch := newChunker(a, rng)
		for {
			data, ok := ch.next()
			if !ok {
				break
			}
			if !yield(event{data: data}) {
				return
			}
		}
		if a.req.IncludeUsage {
			yield(event{data: ch.usageChunk()})
		}
	}
}

// usageChunk returns the chunk that include_usage adds after the last choice chunk.
func (c *chunker) usageChunk() []byte {
	e := c.envelope([]any{})
	e.Usage = marshal(c.a.usage())
	return marshal(e)
}

// piece returns the next piece of s from pos: 1 to 40 bytes, mostly token-sized,
// ending on a character boundary.
func piece(rng *rand.Rand, s string, pos int) string {
	var n int
	switch k := rng.IntN(10); {
	case k == 0:
		n = 1
	case k <= 5:
		n = 2 + rng.IntN(6)
	case k <= 8:
		n = 8 + rng.IntN(12)
	default:
		n = 20 + rng.IntN(21)
	}
	end := min(pos+n, len(s))
	for end < len(s) && !utf8.RuneStart(s[end]) {
		end++
	}
	return s[pos:end]
}

func (c *chunker) chatStep(cur *choiceCursor) any {
	r := cur.reply
	ch := chunkChoice{Index: cur.index}
	switch cur.stage {
	case stageRole:
		ch.Delta = delta{Role: "assistant", Refusal: jsonNull}
		if r.Content == "" && len(r.ToolCalls) > 0 {
			// A reply of tool calls only opens with the first call, content null.
			ch.Delta.Content = jsonNull
			ch.Delta.ToolCalls = []toolCallDelta{c.callHeader(cur)}
			cur.stage = stageArgs
		} else {
			ch.Delta.Content = json.RawMessage(`""`)
			cur.stage = stageContent
		}
	case stageContent:
		if cur.pos == len(r.Content) {
			cur.stage, cur.pos = stageCall, 0
			return nil
		}
		p := piece(c.rng, r.Content, cur.pos)
		cur.pos += len(p)
		ch.Delta.Content = marshal(p)
	case stageCall:
		if cur.call == len(r.ToolCalls) {
			cur.stage = stageFinish
			return nil
		}
		ch.Delta.ToolCalls = []toolCallDelta{c.callHeader(cur)}
		cur.stage = stageArgs
	case stageArgs:
		args := r.ToolCalls[cur.call].Arguments
		if cur.pos == len(args) {
			cur.stage, cur.pos = stageCall, 0
			cur.call++
			return nil
		}
		p := piece(c.rng, args, cur.pos)
		cur.pos += len(p)
		ch.Delta.ToolCalls = []toolCallDelta{{Index: cur.call, Function: functionDelta{Arguments: p}}}
	case stageFinish:
		f := r.finish(ChatPath)
		ch.FinishReason = &f
		cur.stage = stageDone
	}
	return ch
}

// callHeader is the first delta of a tool call: index, id, type, name, and empty
// arguments.
func (c *chunker) callHeader(cur *choiceCursor) toolCallDelta {
	return toolCallDelta{Index: cur.call, ID: c.a.callIDs[cur.index][cur.call], Type: "function",
		Function: functionDelta{Name: cur.reply.ToolCalls[cur.call].Name}}
}

func (c *chunker) legacyStep(cur *choiceCursor) any {
	r := cur.reply
	ch := textChoice{Index: cur.index}
	if cur.pos < len(r.Content) {
		ch.Text = piece(c.rng, r.Content, cur.pos)
		cur.pos += len(ch.Text)
		return ch
	}
	f := r.finish(LegacyPath)
	ch.FinishReason = &f
	cur.stage = stageDone
	return ch
}
