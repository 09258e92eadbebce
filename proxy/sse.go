package proxy

import (
	"bytes"
	"errors"
)

// An sseEvent is one server-sent event as it came over the wire.
type sseEvent struct {
	raw  []byte // every byte of it, the blank line that ends it included
	data []byte // its data lines joined with "\n"; nil when it has none
}

var errEventTooLarge = errors.New("server-sent event too large")

// sseReader splits a byte stream into server-sent events as the bytes arrive, in
// any pieces. It accepts "\n", "\r\n" and "\r" line endings, comments and any
// fields, and keeps each event's bytes exactly, so that an event passed on
// unchanged is byte-for-byte what the upstream sent.
type sseReader struct {
	buf        []byte // bytes of the event in progress
	lineOff    int    // start of the current line in buf
	scanned    int    // bytes of buf already scanned
	data       []byte // the data of an event with more than one data line
	dataLines  int
	dataOff    int // where the value of its only data line is in buf
	dataEnd    int
	cr         bool // the last byte scanned ended a line with '\r': a '\n' may follow
	pendingEnd bool // and that line was blank: the event ends, with or without the '\n'
	maxSize    int  // an event larger than this is an error; 0 means no limit
}

// feed adds bytes and hands emit the events they complete.
func (r *sseReader) feed(p []byte, emit func(sseEvent) error) error {
	r.buf = append(r.buf, p...)
	for r.scanned < len(r.buf) {
		if !r.cr {
			// Skip to the next line end ('\n' found fast, then a '\r' before it).
			rest := r.buf[r.scanned:]
			k := bytes.IndexByte(rest, '\n')
			if k < 0 {
				k = len(rest)
			}
			if cr := bytes.IndexByte(rest[:k], '\r'); cr >= 0 {
				k = cr
			}
			r.scanned += k
			if r.scanned == len(r.buf) {
				break
			}
		}
		i := r.scanned
		c := r.buf[i]
		if r.cr {
			r.cr = false
			if c == '\n' { // the rest of a "\r\n"
				r.scanned++
				r.lineOff = r.scanned
				if r.pendingEnd {
					if err := r.flush(r.scanned, emit); err != nil {
						return err
					}
				}
				continue
			}
			if r.pendingEnd {
				if err := r.flush(i, emit); err != nil {
					return err
				}
				continue
			}
		}
		r.scanned++
		if c != '\r' && c != '\n' {
			continue
		}
		line := r.buf[r.lineOff:i]
		start := r.lineOff
		r.lineOff = r.scanned
		blank := len(line) == 0
		if !blank {
			r.field(start, line)
		}
		if c == '\r' {
			r.cr, r.pendingEnd = true, blank
			continue
		}
		if blank {
			if err := r.flush(r.scanned, emit); err != nil {
				return err
			}
		}
	}
	if r.maxSize > 0 && len(r.buf) > r.maxSize {
		return errEventTooLarge
	}
	return nil
}

// field reads a line that starts at buf[start]. The data of an event with one
// data line, the usual, is found in the event's bytes, not copied.
func (r *sseReader) field(start int, line []byte) {
	if line[0] == ':' {
		return // a comment
	}
	name, value, _ := bytes.Cut(line, []byte(":"))
	value = bytes.TrimPrefix(value, []byte(" "))
	if string(name) != "data" {
		return
	}
	r.dataLines++
	switch r.dataLines {
	case 1:
		r.dataOff = start + len(line) - len(value)
		r.dataEnd = start + len(line)
		return
	case 2:
		r.data = append([]byte(nil), r.buf[r.dataOff:r.dataEnd]...)
	}
	r.data = append(append(r.data, '\n'), value...)
}

// event returns the event whose bytes are raw, taken from buf.
func (r *sseReader) event(raw []byte) sseEvent {
	ev := sseEvent{raw: raw}
	switch {
	case r.dataLines == 1 && r.dataEnd > r.dataOff: // (empty data is no data)
		ev.data = raw[r.dataOff:r.dataEnd:r.dataEnd]
	case r.dataLines > 1:
		ev.data = r.data
	}
	r.data, r.dataLines = nil, 0
	return ev
}

// flush emits the event that ends at buf[end].
func (r *sseReader) flush(end int, emit func(sseEvent) error) error {
	ev := r.event(bytes.Clone(r.buf[:end]))
	r.buf = append(r.buf[:0], r.buf[end:]...)
	if len(r.buf) == 0 && cap(r.buf) > 4<<10 {
		r.buf = nil // a burst's buffer is not kept for the rest of the stream
	}
	r.scanned, r.lineOff, r.pendingEnd = 0, 0, false
	return emit(ev)
}

// rest returns what is left of an event that the stream ended before its blank
// line, as an event; its raw bytes are empty when nothing is left.
func (r *sseReader) rest() sseEvent {
	if r.lineOff < len(r.buf) {
		if line := bytes.TrimRight(r.buf[r.lineOff:], "\r\n"); len(line) > 0 {
			r.field(r.lineOff, line)
		}
	}
	ev := r.event(r.buf)
	*r = sseReader{maxSize: r.maxSize}
	return ev
}

// lineReader splits an NDJSON stream (Ollama's) into its lines as the bytes
// arrive, in any pieces: each line is an event whose raw bytes are the line and its
// end, and whose data is the line without it (nil for a blank line).
type lineReader struct {
	buf     []byte
	maxSize int // a line larger than this is an error; 0 means no limit
}

func (r *lineReader) feed(p []byte, emit func(sseEvent) error) error {
	r.buf = append(r.buf, p...)
	off := 0
	for {
		i := bytes.IndexByte(r.buf[off:], '\n')
		if i < 0 {
			break
		}
		raw := bytes.Clone(r.buf[off : off+i+1])
		off += i + 1
		ev := sseEvent{raw: raw}
		if data := bytes.TrimRight(raw[:len(raw)-1], "\r"); len(bytes.TrimSpace(data)) > 0 {
			ev.data = data
		}
		if err := emit(ev); err != nil {
			return err
		}
	}
	r.buf = append(r.buf[:0], r.buf[off:]...)
	if len(r.buf) == 0 && cap(r.buf) > 4<<10 {
		r.buf = nil
	}
	if r.maxSize > 0 && len(r.buf) > r.maxSize {
		return errEventTooLarge
	}
	return nil
}

// rest returns the line the stream ended in before its newline, as an event.
func (r *lineReader) rest() sseEvent {
	ev := sseEvent{raw: r.buf}
	if data := bytes.TrimSpace(r.buf); len(data) > 0 {
		ev.data = data
	}
	r.buf = nil
	return ev
}
