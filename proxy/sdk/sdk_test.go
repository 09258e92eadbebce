package sdk_test

import (
	"fmt"
	"testing"

	"cleanroom/proxy/upstream"
)

// A client is one of the official OpenAI client libraries. send returns what the
// client received, or the error it raised.
type client struct {
	name string
	send func(t *testing.T, api string, r request) (*received, error)
}

// mustSend sends r and fails the test if the client raised an error.
func (c client) mustSend(t *testing.T, api string, r request) *received {
	t.Helper()
	got, err := c.send(t, api, r)
	if err != nil {
		t.Fatalf("the %s client raised: %v", c.name, err)
	}
	return got
}

var clients = []client{
	{"node", nodeClient},
	{"go", goClient},
}

// original is a markdown answer the index does not hold, with characters JSON and
// SSE framing must carry unchanged.
const original = "Sure, here is one way:\n\n```go\n// Sum adds the numbers up.\nfunc Sum(xs ...float64) (s float64) {\n" +
	"\tfor _, x := range xs {\n\t\ts += x\n\t}\n\treturn s\n}\n```\n\n" +
	"It works for \"quoted\" <html> & back\\slashes, données, 数字, emoji 🧮, and a line\u2028separator.\n" +
	"data: this line is not an SSE field\n\n[DONE]\n"

// gplAnswer is a markdown answer quoting lines [a, b) of gen's file i.
func gplAnswer(i, a, b int) reply {
	return reply{text: upstream.Markdown("c", excerpt(gen.files[i], a, b)), path: fmt.Sprintf("src/gen%d.c", i), license: "GPL-2.0-only"}
}

func TestClients(t *testing.T) {
	clean := reply{text: original}
	scenarios := []struct {
		name    string
		mode    string
		r       request
		replies []reply // choice i answers replies[i]
	}{
		{"chat/stream/blocked", "block", request{"chat", true, 1, "walk the list"}, []reply{gplAnswer(3, 2, 50)}},
		{"chat/whole/blocked", "block", request{"chat", false, 1, "walk the list"}, []reply{gplAnswer(4, 5, 60)}},
		{"chat/stream/n2", "block", request{"chat", true, 2, "two answers"}, []reply{gplAnswer(5, 0, 45), clean}},
		{"chat/whole/n2", "block", request{"chat", false, 2, "two answers"}, []reply{gplAnswer(6, 3, 50), clean}},
		{"chat/stream/clean", "block", request{"chat", true, 1, "sum them"}, []reply{clean}},
		{"chat/whole/clean", "block", request{"chat", false, 1, "sum them"}, []reply{clean}},
		{"completions/stream/n2", "block", request{"completions", true, 2, "int main("}, []reply{gplAnswer(1, 4, 48), clean}},
		{"completions/whole/n2", "block", request{"completions", false, 2, "int main("}, []reply{gplAnswer(2, 4, 48), clean}},
		{"chat/stream/annotate", "annotate", request{"chat", true, 2, "x"}, []reply{gplAnswer(7, 1, 45), clean}},
		{"chat/whole/annotate", "annotate", request{"chat", false, 1, "x"}, []reply{gplAnswer(7, 1, 45)}},
		{"completions/stream/annotate", "annotate", request{"completions", true, 1, "x"}, []reply{gplAnswer(0, 1, 45)}},
	}
	for _, c := range clients {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			for i, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					t.Parallel()
					texts := make([]string, len(sc.replies))
					for j, r := range sc.replies {
						texts[j] = r.text
					}
					e := newEnv(t, gen, sc.mode, int64(i+1), texts...)
					checkChoices(t, gen, sc.mode, c.mustSend(t, e.api, sc.r), sc.replies)
				})
			}
		})
	}
}
