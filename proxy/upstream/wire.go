package upstream

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// WireHeader names the request header that chooses the Wire of one request, in the
// form ParseWire reads. When present it replaces Server.Wire for that request.
const WireHeader = "X-Upstream-Wire"

// Wire says how SSE events are put on the wire. The zero value is OpenAI's own
// framing ("data: JSON\n\n", no event names, no comments) with bytes split unevenly
// across writes: an event is sometimes written in several pieces with a flush between
// them (so a reader sees half a line, or "data: " without its JSON, and may see a
// multi-byte character split across reads), and sometimes held back and written
// together with the next events.
type Wire struct {
	CRLF     bool          // end lines with "\r\n" instead of "\n"
	Comments bool          // send ": keep-alive" comments before the stream and between some events
	Events   bool          // precede each event with "event: message" (note: the openai npm client then yields {event, data} objects, not chunks)
	NoSpace  bool          // write "data:{...}" without the optional space
	ASCII    bool          // escape non-ASCII characters in JSON as \uXXXX, as Python's json.dumps does
	Whole    bool          // one write and flush per event: no split or coalesced writes
	Pace     time.Duration // pause between events, like a model's token rate; 0: none
}

// String returns w in the form ParseWire reads.
func (w Wire) String() string {
	var parts []string
	for _, o := range []struct {
		on   bool
		name string
	}{{w.CRLF, "crlf"}, {w.Comments, "comments"}, {w.Events, "events"}, {w.NoSpace, "nospace"}, {w.ASCII, "ascii"}, {w.Whole, "whole"}} {
		if o.on {
			parts = append(parts, o.name)
		}
	}
	if w.Pace > 0 {
		parts = append(parts, "pace:"+w.Pace.String())
	}
	if len(parts) == 0 {
		return "default"
	}
	return strings.Join(parts, ",")
}

// ParseWire reads a comma-separated list of the words crlf, comments, events,
// nospace, ascii, whole and pace:DURATION. The empty string and "default" give the zero
// Wire.
func ParseWire(s string) (Wire, error) {
	var w Wire
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		name, arg, _ := strings.Cut(part, ":")
		switch name {
		case "", "default":
		case "crlf":
			w.CRLF = true
		case "comments":
			w.Comments = true
		case "events":
			w.Events = true
		case "nospace":
			w.NoSpace = true
		case "ascii":
			w.ASCII = true
		case "whole":
			w.Whole = true
		case "pace":
			d, err := time.ParseDuration(arg)
			if err != nil || d < 0 {
				return w, fmt.Errorf("wire option %q: bad duration", part)
			}
			w.Pace = d
		default:
			return w, fmt.Errorf("unknown wire option %q", part)
		}
	}
	return w, nil
}

// maxHeld is the most events held back to be written together.
const maxHeld = 4

// sseWriter frames events and writes them with uneven boundaries. It is not safe for
// concurrent use.
type sseWriter struct {
	w      io.Writer
	rc     *http.ResponseController
	rng    *rand.Rand
	opt    Wire
	ndjson bool   // frame events as JSON lines, not SSE
	buf    []byte // framed bytes not yet written
	starts []int  // offsets in buf just past each held event's "data:" prefix (its start in NDJSON)
	events int    // data events framed so far
}

// newSSEWriter returns a writer of SSE events, or with ndjson of JSON lines (NDJSON
// has no comments, event names or CRLF; the other Wire options hold).
func newSSEWriter(w http.ResponseWriter, rng *rand.Rand, opt Wire, ndjson bool) *sseWriter {
	return &sseWriter{w: w, rc: http.NewResponseController(w), rng: rng, opt: opt, ndjson: ndjson}
}

func (sw *sseWriter) eol() string {
	if sw.opt.CRLF && !sw.ndjson {
		return "\r\n"
	}
	return "\n"
}

// comment frames an SSE comment line and its blank line.
func (sw *sseWriter) comment() {
	sw.buf = append(sw.buf, ": keep-alive"+sw.eol()+sw.eol()...)
}

// event frames one event and writes it, or holds it back to go out with the next
// ones. An event without a name gets "event: message" with Wire.Events.
func (sw *sseWriter) event(ev event) error {
	data := ev.data
	if sw.opt.ASCII {
		data = escapeASCII(data)
	}
	if sw.ndjson {
		sw.starts = append(sw.starts, len(sw.buf))
		sw.buf = append(append(sw.buf, data...), '\n')
		sw.events++
		return sw.release()
	}
	if sw.opt.Comments && sw.rng.IntN(6) == 0 {
		sw.comment()
	}
	if ev.name == "" && sw.opt.Events {
		ev.name = "message"
	}
	if ev.name != "" {
		sw.buf = append(sw.buf, "event:"...)
		if !sw.opt.NoSpace {
			sw.buf = append(sw.buf, ' ')
		}
		sw.buf = append(sw.buf, ev.name+sw.eol()...)
	}
	sw.buf = append(sw.buf, "data:"...)
	if !sw.opt.NoSpace {
		sw.buf = append(sw.buf, ' ')
	}
	sw.starts = append(sw.starts, len(sw.buf))
	sw.buf = append(sw.buf, data...)
	sw.buf = append(sw.buf, sw.eol()+sw.eol()...)
	sw.events++
	return sw.release()
}

// release writes what is held, or now and then holds it for the next events.
func (sw *sseWriter) release() error {
	if !sw.opt.Whole && len(sw.starts) < maxHeld && sw.rng.IntN(4) == 0 {
		return nil
	}
	return sw.flush()
}

// garbage frames a line that is not an SSE field (not JSON in NDJSON) and an event
// (a line) whose data is not JSON.
func (sw *sseWriter) garbage() {
	if sw.ndjson {
		sw.buf = append(sw.buf, "garbage\x7f not JSON\n{\"model\": not JSON\n"...)
		return
	}
	sw.buf = append(sw.buf, "garbage\x7f not an SSE field"+sw.eol()...)
	sw.buf = append(sw.buf, "data: {\"id\": not JSON"+sw.eol()+sw.eol()...)
}

// flush writes what is held, in one piece or several, flushing after each.
func (sw *sseWriter) flush() error {
	defer func() {
		sw.buf = sw.buf[:0]
		sw.starts = sw.starts[:0]
	}()
	if len(sw.buf) == 0 {
		return nil
	}
	cuts := sw.cuts()
	prev := 0
	for _, c := range append(cuts, len(sw.buf)) {
		if _, err := sw.w.Write(sw.buf[prev:c]); err != nil {
			return err
		}
		if err := sw.rc.Flush(); err != nil {
			return err
		}
		prev = c
	}
	return nil
}

// cuts picks where to split the held bytes between writes: none half of the time, else
// one to three cuts, some of them just past "data: " or between the two line ends
// that close an event, where a careless reader is most likely to trip.
func (sw *sseWriter) cuts() []int {
	n := len(sw.buf)
	if sw.opt.Whole || n < 2 || sw.rng.IntN(2) == 0 {
		return nil
	}
	var cuts []int
	for range 1 + sw.rng.IntN(3) {
		var c int
		switch sw.rng.IntN(4) {
		case 0:
			c = sw.starts[sw.rng.IntN(len(sw.starts))]
		case 1:
			c = n - len(sw.eol())
		default:
			c = 1 + sw.rng.IntN(n-1)
		}
		if c > 0 && c < n {
			cuts = append(cuts, c)
		}
	}
	slices.Sort(cuts)
	return slices.Compact(cuts)
}

// escapeASCII rewrites every non-ASCII character of a JSON text as a \u escape
// (a surrogate pair beyond the BMP). Outside strings JSON is ASCII, so every such
// character is inside a string, where the escape means the same.
func escapeASCII(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/8)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch {
		case r < utf8.RuneSelf:
			out = append(out, b[0])
		case r > 0xFFFF:
			r -= 0x10000
			out = fmt.Appendf(out, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
		b = b[size:]
	}
	return out
}
