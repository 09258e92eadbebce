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
	data       []byte
	hasData    bool
	cr         bool // the last byte scanned ended a line with '\r': a '\n' may follow
	pendingEnd bool // and that line was blank: the event ends, with or without the '\n'
	maxSize    int  // an event larger than this is an error; 0 means no limit
}

// feed adds bytes and hands emit the events they complete.
func (r *sseReader) feed(p []byte, emit func(sseEvent) error) error {
	r.buf = append(r.buf, p...)
	for r.scanned < len(r.buf) {
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
		r.lineOff = r.scanned
		blank := len(line) == 0
		if !blank {
			r.field(line)
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

func (r *sseReader) field(line []byte) {
	if line[0] == ':' {
		return // a comment
	}
	name, value, _ := bytes.Cut(line, []byte(":"))
	value = bytes.TrimPrefix(value, []byte(" "))
	if string(name) == "data" {
		if r.hasData {
			r.data = append(r.data, '\n')
		}
		r.data = append(r.data, value...)
		r.hasData = true
	}
}

// flush emits the event that ends at buf[end].
func (r *sseReader) flush(end int, emit func(sseEvent) error) error {
	ev := sseEvent{raw: bytes.Clone(r.buf[:end])}
	if r.hasData {
		ev.data = r.data
	}
	r.buf = append(r.buf[:0], r.buf[end:]...)
	r.scanned, r.lineOff = 0, 0
	r.data, r.hasData, r.pendingEnd = nil, false, false
	return emit(ev)
}

// rest returns what is left of an event that the stream ended before its blank
// line, as an event; its raw bytes are empty when nothing is left.
func (r *sseReader) rest() sseEvent {
	if r.lineOff < len(r.buf) {
		if line := bytes.TrimRight(r.buf[r.lineOff:], "\r\n"); len(line) > 0 {
			r.field(line)
		}
	}
	ev := sseEvent{raw: r.buf}
	if r.hasData {
		ev.data = r.data
	}
	*r = sseReader{maxSize: r.maxSize}
	return ev
}
