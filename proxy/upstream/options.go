package upstream

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Options configure a Server from the command line.
type Options struct {
	// Replay lists the texts the model regurgitates, each a file (decompressed if its
	// name ends in .gz), optionally with a line range: PATH:START-END, 1-based and
	// inclusive. Empty: the model echoes.
	Replay []string
	// Markdown answers each replayed text as a fenced code block in prose.
	Markdown bool
	// Seed seeds the uneven chunking. Default 0.
	Seed int64
	// Wire frames every stream; a request's WireHeader overrides it.
	Wire Wire
	// Faults apply to every request; a request's FaultHeader overrides them.
	Faults []Fault
	// APIKey, if set, is the only key accepted (bearer token, or x-api-key for Messages).
	APIKey string
	// Admin serves the /_upstream/ routes (see Server.Admin).
	Admin bool
}

// Flags registers the options on fs.
func (o *Options) Flags(fs *flag.FlagSet) {
	fs.Func("replay", "regurgitate `FILE` (FILE.gz, FILE:START-END); repeatable", func(s string) error {
		o.Replay = append(o.Replay, s)
		return nil
	})
	fs.BoolVar(&o.Markdown, "markdown", o.Markdown, "answer replayed text as a markdown code block in prose")
	fs.Int64Var(&o.Seed, "seed", o.Seed, "seed of the uneven chunking")
	fs.Func("wire", "stream framing: `LIST` of crlf, comments, events, nospace, ascii, whole, pace:DURATION", func(s string) error {
		w, err := ParseWire(s)
		o.Wire = w
		return err
	})
	fs.Func("fault", "faults for every request: `LIST` such as status:429, drop:3, slow:1s (see ParseFaults)", func(s string) error {
		f, err := ParseFaults(s)
		o.Faults = f
		return err
	})
	fs.StringVar(&o.APIKey, "api-key", o.APIKey, "accept only this key, as a bearer token or (Messages API) x-api-key (default: any)")
	fs.BoolVar(&o.Admin, "admin", o.Admin, "serve GET /_upstream/stats and /_upstream/last")
}

// Server loads the replayed texts and returns the Server the options describe.
func (o *Options) Server() (*Server, error) {
	s := New()
	s.Seed, s.Wire, s.Faults, s.APIKey, s.Admin = o.Seed, o.Wire, o.Faults, o.APIKey, o.Admin
	if len(o.Replay) == 0 {
		return s, nil
	}
	texts := make([]string, 0, len(o.Replay))
	for _, spec := range o.Replay {
		text, err := LoadText(spec)
		if err != nil {
			return nil, err
		}
		if o.Markdown {
			text = Markdown(LangOf(spec), text)
		}
		texts = append(texts, text)
	}
	s.Script = ReplayScript(texts...)
	return s, nil
}

var lineRange = regexp.MustCompile(`:(\d+)-(\d+)$`)

// LoadText reads the text of spec: a file, decompressed if its name ends in .gz,
// optionally followed by a line range ":START-END" (1-based, inclusive) that keeps
// only those lines.
func LoadText(spec string) (string, error) {
	path, start, end := spec, 0, 0
	if m := lineRange.FindStringSubmatch(spec); m != nil {
		path = spec[:len(spec)-len(m[0])]
		start, _ = strconv.Atoi(m[1])
		end, _ = strconv.Atoi(m[2])
		if start < 1 || end < start {
			return "", fmt.Errorf("load %s: bad line range", spec)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("load %s: %w", spec, err)
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		gz, err := gzip.NewReader(f)
		if err != nil {
			return "", fmt.Errorf("load %s: %w", spec, err)
		}
		defer gz.Close()
		r = gz
	}
	if start == 0 {
		b, err := io.ReadAll(r)
		if err != nil {
			return "", fmt.Errorf("load %s: %w", spec, err)
		}
		return string(b), nil
	}
	var sb strings.Builder
	br := bufio.NewReader(r)
	for n := 1; n <= end; n++ {
		line, err := br.ReadString('\n')
		if n >= start {
			sb.WriteString(line)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("load %s: %w", spec, err)
		}
	}
	if sb.Len() == 0 {
		return "", fmt.Errorf("load %s: no lines in range", spec)
	}
	return sb.String(), nil
}

// LangOf returns the markdown fence language for a file name, or "".
func LangOf(spec string) string {
	if m := lineRange.FindStringIndex(spec); m != nil {
		spec = spec[:m[0]]
	}
	spec = strings.TrimSuffix(spec, ".gz")
	switch strings.ToLower(filepath.Ext(spec)) {
	case ".c", ".h":
		return "c"
	case ".cc", ".cpp", ".cxx", ".hpp", ".hh":
		return "cpp"
	case ".el":
		return "elisp"
	case ".go":
		return "go"
	case ".py":
		return "python"
	case ".js", ".mjs":
		return "javascript"
	case ".ts":
		return "typescript"
	case ".rs":
		return "rust"
	case ".java":
		return "java"
	case ".sh":
		return "sh"
	case ".rb":
		return "ruby"
	case ".pl", ".pm":
		return "perl"
	}
	return ""
}
