package upstream

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"time"
	"unicode"
)

// fingerprint is the system_fingerprint of every answer.
const fingerprint = "fp_upstream"

// answer is everything decided about one request before it is written: the same
// values make the streamed and the non-streamed forms.
type answer struct {
	req     *Request
	replies []Reply
	callIDs [][]string // callIDs[choice][call]
	id      string
	created int64
}

func newAnswer(req *Request, replies []Reply) *answer {
	a := &answer{req: req, replies: replies, created: time.Now().Unix()}
	prefix, callPrefix, n := "chatcmpl-", "call_", 29
	switch req.Path {
	case LegacyPath:
		prefix = "cmpl-"
	case ResponsesPath:
		prefix, n = "resp_", 48
	case MessagesPath:
		prefix, callPrefix, n = "msg_01", "toolu_01", 22
	case OllamaChatPath, OllamaGeneratePath:
		prefix = ""
	}
	a.id = prefix + randomID(n)
	a.callIDs = make([][]string, len(replies))
	for i, r := range replies {
		for range len(r.ToolCalls) + len(r.CustomToolCalls) {
			a.callIDs[i] = append(a.callIDs[i], callPrefix+randomID(24))
		}
	}
	return a
}

const idAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomID returns n random letters and digits. IDs come from the global source, not
// the seeded one: identical requests still get distinct IDs.
func randomID(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = idAlphabet[rand.IntN(len(idAlphabet))]
	}
	return string(b)
}

// Usage is the usage object. Tokens are counted roughly: each run of letters or
// digits and each other non-space character is a token.
type Usage struct {
	PromptTokens            int             `json:"prompt_tokens"`
	CompletionTokens        int             `json:"completion_tokens"`
	TotalTokens             int             `json:"total_tokens"`
	PromptTokensDetails     *map[string]int `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *map[string]int `json:"completion_tokens_details,omitempty"`
}

// CountTokens is the rough token count used in usage objects.
func CountTokens(s string) int {
	n := 0
	inWord := false
	for _, r := range s {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_':
			if !inWord {
				n++
			}
			inWord = true
		case unicode.IsSpace(r):
			inWord = false
		default:
			n++
			inWord = false
		}
	}
	return n
}

// tokens is the part's count in usage objects.
func (p part) tokens() int {
	if p.kind == partCall || p.kind == partCustom {
		return 3 + CountTokens(p.name) + CountTokens(p.text)
	}
	return CountTokens(p.text)
}

// reasoningTokens counts the reasoning parts of every reply.
func (a *answer) reasoningTokens() int {
	n := 0
	for i := range a.replies {
		for _, p := range a.parts(i) {
			if p.kind == partReasoning {
				n += p.tokens()
			}
		}
	}
	return n
}

func (a *answer) usage() Usage {
	var u Usage
	u.PromptTokens = CountTokens(a.req.Prompt) + CountTokens(a.req.System)
	for _, m := range a.req.Messages {
		u.PromptTokens += 3 + CountTokens(m.Content)
	}
	for i := range a.replies {
		for _, p := range a.parts(i) {
			u.CompletionTokens += p.tokens()
		}
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	if a.req.Path == ChatPath {
		u.PromptTokensDetails = &map[string]int{"cached_tokens": 0, "audio_tokens": 0}
		u.CompletionTokensDetails = &map[string]int{"reasoning_tokens": 0, "audio_tokens": 0,
			"accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
	}
	return u
}

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []chatChoice `json:"choices"`
	Usage             Usage        `json:"usage"`
	ServiceTier       string       `json:"service_tier"`
	SystemFingerprint string       `json:"system_fingerprint"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	Logprobs     *struct{}   `json:"logprobs"`
	FinishReason string      `json:"finish_reason"`
}

type chatMessage struct {
	Role        string     `json:"role"`
	Content     *string    `json:"content"`
	Refusal     *string    `json:"refusal"`
	ToolCalls   []toolCall `json:"tool_calls,omitempty"`
	Annotations []struct{} `json:"annotations"`
}

type toolCall struct {
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function toolFunction `json:"function"`
}

type toolFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type textCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []textChoice `json:"choices"`
	Usage             *Usage       `json:"usage,omitempty"`
	SystemFingerprint string       `json:"system_fingerprint"`
}

type textChoice struct {
	Text         string    `json:"text"`
	Index        int       `json:"index"`
	Logprobs     *struct{} `json:"logprobs"`
	FinishReason *string   `json:"finish_reason"`
}

// whole returns the non-streamed answer: a chat.completion or a text_completion.
func (a *answer) whole() []byte {
	u := a.usage()
	if a.req.Path == LegacyPath {
		c := textCompletion{ID: a.id, Object: "text_completion", Created: a.created, Model: a.req.Model,
			Usage: &u, SystemFingerprint: fingerprint}
		for i, r := range a.replies {
			f := r.finish(LegacyPath)
			c.Choices = append(c.Choices, textChoice{Text: r.Content, Index: i, FinishReason: &f})
		}
		return marshal(c)
	}
	c := chatCompletion{ID: a.id, Object: "chat.completion", Created: a.created, Model: a.req.Model,
		Usage: u, ServiceTier: "default", SystemFingerprint: fingerprint}
	for i, r := range a.replies {
		m := chatMessage{Role: "assistant", Annotations: []struct{}{}}
		if r.Content != "" || len(r.ToolCalls) == 0 {
			m.Content = &r.Content
		}
		for j, tc := range r.ToolCalls {
			m.ToolCalls = append(m.ToolCalls, toolCall{ID: a.callIDs[i][j], Type: "function",
				Function: toolFunction{Name: tc.Name, Arguments: tc.Arguments}})
		}
		c.Choices = append(c.Choices, chatChoice{Index: i, Message: m, FinishReason: r.finish(ChatPath)})
	}
	return marshal(c)
}

// marshal encodes v as compact JSON without HTML escaping and without a final
// newline.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("upstream: marshal: " + err.Error()) // only our own types are encoded
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// modelIDs are the models GET /v1/models lists. Any model name is accepted.
var modelIDs = []string{"gpt-4o-mini", "gpt-4o", "gpt-3.5-turbo-instruct", "upstream-echo"}

func modelObject(id string) map[string]any {
	return map[string]any{"id": id, "object": "model", "created": 1700000000, "owned_by": "upstream"}
}

func modelList() []byte {
	var data []map[string]any
	for _, id := range modelIDs {
		data = append(data, modelObject(id))
	}
	return marshal(map[string]any{"object": "list", "data": data})
}

func isModel(id string) bool {
	for _, m := range modelIDs {
		if strings.EqualFold(m, id) {
			return true
		}
	}
	return false
}
