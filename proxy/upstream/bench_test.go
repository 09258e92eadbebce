package upstream

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

// discardFlusher is a ResponseWriter that throws the answer away.
type discardFlusher struct {
	header http.Header
	n      int64
}

func (d *discardFlusher) Header() http.Header         { return d.header }
func (d *discardFlusher) WriteHeader(int)             {}
func (d *discardFlusher) Write(b []byte) (int, error) { d.n += int64(len(b)); return len(b), nil }
func (d *discardFlusher) Flush()                      {}

// BenchmarkStream measures the cost of producing a stream: content MB/s and the
// bytes put on the wire per content byte.
func BenchmarkStream(b *testing.B) {
	for _, wire := range []string{"default", "whole"} {
		b.Run(wire, func(b *testing.B) {
			body, _ := json.Marshal(chatBody(1, true, true, longText))
			s := New()
			var wireBytes int64
			b.ReportAllocs()
			b.SetBytes(int64(len(longText)))
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, ChatPath, bytes.NewReader(body))
				req.Header.Set(WireHeader, wire)
				w := &discardFlusher{header: http.Header{}}
				s.ServeHTTP(w, req)
				wireBytes += w.n
			}
			b.ReportMetric(float64(wireBytes)/float64(b.N)/float64(len(longText)), "wire-bytes/byte")
		})
	}
}
