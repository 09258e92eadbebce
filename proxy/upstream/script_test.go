package upstream

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestScripts(t *testing.T) {
	texts := []string{"alpha\n", "beta\n", Markdown("c", "int x;")}
	tests := []struct {
		name   string
		script Script
		path   string
		body   map[string]any
		want   func(r *Request) []string // contents, per choice
	}{
		{"echo chat", EchoScript, ChatPath, chatBody(2, false, false, "say this"),
			func(*Request) []string { return []string{"say this", "say this"} }},
		{"echo legacy", EchoScript, LegacyPath, legacyBody(1, false, false, "def f"),
			func(*Request) []string { return []string{"def f"} }},
		{"echo without user", EchoScript, ChatPath, map[string]any{"model": "m", "messages": []any{map[string]any{"role": "system", "content": "s"}}},
			func(*Request) []string { return []string{""} }},
		{"replay n=3", ReplayScript(texts...), ChatPath, chatBody(3, false, false, "write x"),
			func(r *Request) []string {
				h := r.hash()
				return []string{texts[h%3], texts[(h+1)%3], texts[(h+2)%3]}
			}},
		{"replay none echoes", ReplayScript(), ChatPath, chatBody(1, false, false, "q"),
			func(*Request) []string { return []string{"q"} }},
		{"fixed cycles", FixedScript(Reply{Content: "a"}, Reply{Content: "b"}), ChatPath, chatBody(3, false, false, "q"),
			func(*Request) []string { return []string{"a", "b", "a"} }},
		{"directive array", nil, ChatPath, chatBody(3, false, false, Directive(Reply{Content: "x"}, Reply{Content: "y"})+"\nignored"),
			func(*Request) []string { return []string{"x", "y", "x"} }},
		{"directive object", ReplayScript(texts...), ChatPath, chatBody(1, false, false, `#upstream: {"content":"only"}`),
			func(*Request) []string { return []string{"only"} }},
		{"directive legacy", nil, LegacyPath, legacyBody(1, false, false, `#upstream: [{"content":"z"}]`),
			func(*Request) []string { return []string{"z"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := json.Marshal(tt.body)
			req, err := parseRequest(tt.path, b)
			if err != nil {
				t.Fatal(err)
			}
			s := New()
			s.Script = tt.script
			replies, err := s.replies(req)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range replies {
				got = append(got, r.Content)
			}
			if want := tt.want(req); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("contents %q, want %q", got, want)
			}
		})
	}
}

func TestReplayIsStable(t *testing.T) {
	script := ReplayScript("a", "b", "c", "d", "e")
	seen := map[string]bool{}
	for _, q := range []string{"q1", "q2", "q3", "q4", "q5", "q6"} {
		b, _ := json.Marshal(chatBody(1, false, false, q))
		r1, _ := parseRequest(ChatPath, b)
		b2, _ := json.Marshal(chatBody(1, true, true, q)) // streaming options do not change the answer
		r2, _ := parseRequest(ChatPath, b2)
		a, _ := script(r1)
		c, _ := script(r2)
		if a[0].Content != c[0].Content {
			t.Errorf("question %q answered %q then %q", q, a[0].Content, c[0].Content)
		}
		seen[a[0].Content] = true
	}
	if len(seen) < 2 {
		t.Errorf("six questions all got the same text %v", seen)
	}
}

func TestMarkdown(t *testing.T) {
	for _, text := range []string{"int x;", "int x;\n"} {
		got := Markdown("c", text)
		want := "Here is an implementation:\n\n```c\nint x;\n```\n\n"
		if !strings.HasPrefix(got, want) || !strings.HasSuffix(got, "\n") {
			t.Errorf("Markdown(%q) = %q, want it to start %q", text, got, want)
		}
	}
}

func TestReplyFinish(t *testing.T) {
	tests := []struct {
		r    Reply
		path string
		want string
	}{
		{Reply{Content: "x"}, ChatPath, "stop"},
		{Reply{ToolCalls: []ToolCall{{Name: "f"}}}, ChatPath, "tool_calls"},
		{Reply{Content: "x", ToolCalls: []ToolCall{{Name: "f"}}}, ChatPath, "tool_calls"},
		{Reply{Content: "x", ToolCalls: []ToolCall{{Name: "f"}}}, LegacyPath, "stop"},
		{Reply{Content: "x", Finish: "length"}, ChatPath, "length"},
	}
	for _, tt := range tests {
		if got := tt.r.finish(tt.path); got != tt.want {
			t.Errorf("%+v at %s: finish %q, want %q", tt.r, tt.path, got, tt.want)
		}
	}
}

func TestParseFaults(t *testing.T) {
	tests := []struct {
		in      string
		want    string // String of each, joined by ","
		wantErr bool
	}{
		{"", "", false},
		{"none", "", false},
		{"status:429", "status:429", false},
		{"html", "html", false},
		{"html:504, slow:250ms", "html:504,slow:250ms", false},
		{"stall", "stall:2", false},
		{"drop:0,truncate:7,garbage:1,error-event:3", "drop:0,truncate:7,garbage:1,error-event:3", false},
		{"huge:2MB", "huge:2097152", false},
		{"huge:512k", "huge:524288", false},
		{"huge", "huge", false},
		{"explode", "", true},
		{"status:abc", "", true},
		{"status:99", "", true},
		{"slow", "", true},
		{"drop:-1", "", true},
		{"huge:lots", "", true},
	}
	for _, tt := range tests {
		fs, err := ParseFaults(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseFaults(%q) error %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		var got []string
		for _, f := range fs {
			got = append(got, f.String())
		}
		if strings.Join(got, ",") != tt.want {
			t.Errorf("ParseFaults(%q) = %q, want %q", tt.in, got, tt.want)
		}
		// What String writes, ParseFaults reads back the same.
		again, err := ParseFaults(strings.Join(got, ","))
		if err != nil || len(again) != len(fs) {
			t.Errorf("round trip of %q: %v %v", got, again, err)
		}
	}
}

func TestParseWire(t *testing.T) {
	tests := []struct {
		in      string
		want    Wire
		wantErr bool
	}{
		{"", Wire{}, false},
		{"default", Wire{}, false},
		{"crlf, comments,events,nospace,ascii,whole,pace:5ms", Wire{true, true, true, true, true, true, 5 * time.Millisecond}, false},
		{"pace:x", Wire{}, true},
		{"fast", Wire{}, true},
	}
	for _, tt := range tests {
		got, err := ParseWire(tt.in)
		if (err != nil) != tt.wantErr || err == nil && got != tt.want {
			t.Errorf("ParseWire(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if err == nil {
			if back, _ := ParseWire(got.String()); back != got {
				t.Errorf("round trip of %q: %+v", got.String(), back)
			}
		}
	}
}

func TestLoadText(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "a.c")
	os.WriteFile(plain, []byte("one\ntwo\nthree\nfour"), 0o644)
	gz := filepath.Join(dir, "b.el.gz")
	f, _ := os.Create(gz)
	zw := gzip.NewWriter(f)
	zw.Write([]byte("(defun x ()\n  nil)\n"))
	zw.Close()
	f.Close()
	tests := []struct {
		spec    string
		want    string
		lang    string
		wantErr bool
	}{
		{plain, "one\ntwo\nthree\nfour", "c", false},
		{plain + ":2-3", "two\nthree\n", "c", false},
		{plain + ":3-99", "three\nfour", "c", false},
		{plain + ":9-10", "", "c", true},
		{plain + ":3-2", "", "c", true},
		{gz, "(defun x ()\n  nil)\n", "elisp", false},
		{gz + ":2-2", "  nil)\n", "elisp", false},
		{filepath.Join(dir, "missing.py"), "", "python", true},
	}
	for _, tt := range tests {
		got, err := LoadText(tt.spec)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("LoadText(%q) = %q, %v; want %q, error %v", tt.spec, got, err, tt.want, tt.wantErr)
		}
		if lang := LangOf(tt.spec); lang != tt.lang {
			t.Errorf("LangOf(%q) = %q, want %q", tt.spec, lang, tt.lang)
		}
	}
}

func TestOptionsServer(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.c")
	os.WriteFile(path, []byte("int x;\n"), 0o644)
	o := Options{Replay: []string{path}, Markdown: true, Seed: 7}
	s, err := o.Server()
	if err != nil {
		t.Fatal(err)
	}
	rec := serve(s, ChatPath, chatBody(1, false, false, "q"), nil)
	var v struct {
		Choices []struct{ Message struct{ Content string } }
	}
	json.Unmarshal(rec.body(), &v)
	if got, want := v.Choices[0].Message.Content, Markdown("c", "int x;\n"); got != want {
		t.Errorf("content %q, want %q", got, want)
	}
	if _, err := (&Options{Replay: []string{filepath.Join(dir, "none")}}).Server(); err == nil {
		t.Errorf("missing replay file: no error")
	}
}

// TestReplayCorpus regurgitates a real file from a Debian package, when it is
// installed, and checks that the stream carries it byte for byte.
func TestReplayCorpus(t *testing.T) {
	matches, _ := filepath.Glob("/usr/share/emacs/*/lisp/subr.el.gz")
	if len(matches) == 0 {
		t.Skip("emacs lisp sources not installed")
	}
	text, err := LoadText(matches[0] + ":1-400")
	if err != nil {
		t.Fatal(err)
	}
	s := New()
	s.Script = ReplayScript(Markdown("elisp", text))
	rec := serve(s, ChatPath, chatBody(2, true, true, "write subr"), nil)
	events, _, err := readSSE(rec.body())
	if err != nil {
		t.Fatal(err)
	}
	want := Reply{Content: Markdown("elisp", text)}
	assemble(t, events, false, true).check(t, []Reply{want, want}, ChatPath)
}
