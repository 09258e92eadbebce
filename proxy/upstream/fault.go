package upstream

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// FaultHeader names the request header that selects faults for one request, so that
// one server can serve a whole test matrix. Its value is a comma-separated list in the
// form ParseFaults reads; "none" asks for a clean answer even when Server.Faults is set.
const FaultHeader = "X-Upstream-Fault"

// A FaultKind names one way the fake model misbehaves.
type FaultKind int

const (
	// FaultStatus answers Status (default 500) with an error body in the API's
	// shape (OpenAI's, Anthropic's {"type":"error",...}, Ollama's {"error":...}).
	FaultStatus FaultKind = iota + 1
	// FaultHTML answers Status (default 502) with a text/html page, as a load
	// balancer in front of a model server does.
	FaultHTML
	// FaultSlow waits Delay before sending anything, headers included.
	FaultSlow
	// FaultStall stops sending after After events and hangs until the client goes
	// away or the Server is closed. A non-streamed answer stalls halfway through its
	// body.
	FaultStall
	// FaultDrop closes the connection after After events, without ending the chunked
	// body, so the client reads an unexpected EOF. A non-streamed answer is cut
	// halfway through its body. It needs a connection to hijack: over HTTP/2 the
	// handler aborts instead (panic(http.ErrAbortHandler)), which resets the stream.
	FaultDrop
	// FaultTruncate ends the response cleanly after After events but without the
	// stream's closing event: "data: [DONE]", response.completed (Responses),
	// message_stop (Messages) or the line with done true (Ollama); an After past the
	// end leaves out just that event. A non-streamed answer ends cleanly halfway
	// through its body, which is then not valid JSON.
	FaultTruncate
	// FaultGarbage sends, after After events, a line that is not an SSE field and an
	// event whose data is not JSON (in NDJSON, two lines that are not JSON), then
	// goes on with the stream. A non-streamed answer is replaced by a body that is
	// not JSON.
	FaultGarbage
	// FaultErrorEvent sends, after After events, the event the API sends when a
	// model fails mid-stream, and ends the response without its closing event: an
	// OpenAI error object ({"error":{...}}) for chat and legacy, "event: error" with
	// {"type":"error","code":...,"message":...,"sequence_number":N} (Responses) or
	// {"type":"error","error":{"type":"overloaded_error",...}} (Messages), a line
	// {"error":"..."} (Ollama). A non-streamed answer is the API's error body with
	// status 200.
	FaultErrorEvent
	// FaultHuge repeats each choice's content until it is Size bytes long (default
	// 4 MiB), far longer than any model's reply. An empty content is filled with a
	// stock sentence.
	FaultHuge
)

var faultNames = map[FaultKind]string{
	FaultStatus:     "status",
	FaultHTML:       "html",
	FaultSlow:       "slow",
	FaultStall:      "stall",
	FaultDrop:       "drop",
	FaultTruncate:   "truncate",
	FaultGarbage:    "garbage",
	FaultErrorEvent: "error-event",
	FaultHuge:       "huge",
}

// A Fault is one misbehaviour, applied to a request by Server.Faults or FaultHeader.
// Fields that do not concern its Kind are ignored.
type Fault struct {
	Kind   FaultKind
	Status int           // FaultStatus, FaultHTML: the HTTP status
	After  int           // stream faults: data events sent before the fault strikes
	Delay  time.Duration // FaultSlow
	Size   int           // FaultHuge: bytes of content per choice
}

// String returns f in the form ParseFaults reads, e.g. "status:429", "drop:3",
// "slow:250ms", "huge:4194304".
func (f Fault) String() string {
	name := faultNames[f.Kind]
	if name == "" {
		return fmt.Sprintf("fault(%d)", int(f.Kind))
	}
	switch f.Kind {
	case FaultStatus, FaultHTML:
		if f.Status != 0 {
			return name + ":" + strconv.Itoa(f.Status)
		}
	case FaultSlow:
		return name + ":" + f.Delay.String()
	case FaultStall, FaultDrop, FaultTruncate, FaultGarbage, FaultErrorEvent:
		return name + ":" + strconv.Itoa(f.After)
	case FaultHuge:
		if f.Size != 0 {
			return name + ":" + strconv.Itoa(f.Size)
		}
	}
	return name
}

// ParseFaults reads a comma-separated list of faults, each NAME or NAME:ARG:
//
//	status:CODE       an error body with status CODE (400, 401, 404, 429, 500, 503, 529, ...)
//	html[:CODE]       a text/html error page, default 502
//	slow:DURATION     wait before the first byte, e.g. slow:2s
//	stall[:N]         stop after N events (default 2) and hang
//	drop[:N]          close the connection after N events
//	truncate[:N]      end after N events without the closing event ([DONE], ...)
//	garbage[:N]       a non-SSE line and a non-JSON event after N events
//	error-event[:N]   the API's mid-stream error event after N events, then end
//	huge[:SIZE]       content repeated to SIZE bytes (suffix KB or MB allowed), default 4MB
//
// The empty string and "none" give no faults.
func ParseFaults(s string) ([]Fault, error) {
	var out []Fault
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" || part == "none" {
			continue
		}
		f, err := parseFault(part)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

func parseFault(s string) (Fault, error) {
	name, arg, hasArg := strings.Cut(s, ":")
	var f Fault
	for k, n := range faultNames {
		if n == name {
			f.Kind = k
		}
	}
	if f.Kind == 0 {
		return f, fmt.Errorf("unknown fault %q", name)
	}
	var err error
	switch f.Kind {
	case FaultStatus, FaultHTML:
		if hasArg {
			f.Status, err = strconv.Atoi(arg)
			if err == nil && (f.Status < 200 || f.Status > 599) {
				err = fmt.Errorf("status %d out of range", f.Status)
			}
		}
	case FaultSlow:
		if !hasArg {
			return f, fmt.Errorf("fault %q needs a duration, e.g. slow:1s", s)
		}
		f.Delay, err = time.ParseDuration(arg)
	case FaultHuge:
		if hasArg {
			f.Size, err = parseSize(arg)
		}
	default:
		f.After = 2
		if hasArg {
			f.After, err = strconv.Atoi(arg)
			if err == nil && f.After < 0 {
				err = fmt.Errorf("negative event count")
			}
		}
	}
	if err != nil {
		return f, fmt.Errorf("fault %q: %w", s, err)
	}
	return f, nil
}

func parseSize(s string) (int, error) {
	mult := 1
	upper := strings.ToUpper(s)
	for _, u := range []struct {
		suffix string
		mult   int
	}{{"MIB", 1 << 20}, {"KIB", 1 << 10}, {"MB", 1 << 20}, {"KB", 1 << 10}, {"M", 1 << 20}, {"K", 1 << 10}, {"B", 1}} {
		if strings.HasSuffix(upper, u.suffix) {
			mult, s = u.mult, s[:len(s)-len(u.suffix)]
			break
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// faultSet is the faults of one request, looked up by kind.
type faultSet map[FaultKind]Fault

func newFaultSet(fs []Fault) faultSet {
	set := make(faultSet, len(fs))
	for _, f := range fs {
		set[f.Kind] = f
	}
	return set
}

func (set faultSet) has(k FaultKind) (Fault, bool) {
	f, ok := set[k]
	return f, ok
}

// strikes returns the fault of kind k if it strikes once n events have been sent: at
// n == After, or at the end of the stream (end) if the stream is shorter than After.
func (set faultSet) strikes(k FaultKind, n int, end bool) (Fault, bool) {
	f, ok := set[k]
	if !ok || f.After > n && !end || f.After < n {
		return Fault{}, false
	}
	return f, true
}
