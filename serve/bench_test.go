package serve

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// benchBody is a request body that can be rewound without allocating.
type benchBody struct{ bytes.Reader }

func (*benchBody) Close() error { return nil }

// benchWriter is a ResponseWriter that keeps its header map and discards
// the body, so that the benchmark measures the handler, not a recorder.
type benchWriter struct {
	h      http.Header
	status int
	n      int
}

func (w *benchWriter) Header() http.Header         { return w.h }
func (w *benchWriter) WriteHeader(code int)        { w.status = code }
func (w *benchWriter) Write(p []byte) (int, error) { w.n += len(p); return len(p), nil }

func newBenchServer(b *testing.B, sync bool) *Server {
	b.Helper()
	f, err := OpenLogFile(filepath.Join(b.TempDir(), "decisions.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	s, err := New(Options{Source: builtin, DecisionLog: f, LogSync: sync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// postLoop posts body to path through the handler b.N times (per
// goroutine share when parallel); every answer must be 200.
func postLoop(b *testing.B, s *Server, path string, body []byte, next func() bool) {
	rb := &benchBody{}
	r, err := http.NewRequest(http.MethodPost, path, rb)
	if err != nil {
		b.Error(err)
		return
	}
	r.Header.Set("Content-Type", "application/json")
	r.ContentLength = int64(len(body))
	w := &benchWriter{h: http.Header{}}
	for next() {
		rb.Reset(body)
		clear(w.h)
		w.status = 0
		s.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			b.Errorf("status %d", w.status)
			return
		}
	}
}

// BenchmarkCheckHandler is one allow decision through the handler with the
// decision log written to a file: decode, decide, log, answer.
func BenchmarkCheckHandler(b *testing.B) {
	s := newBenchServer(b, false)
	b.ReportAllocs()
	postLoop(b, s, "/v1/check", []byte(allowBody), b.Loop)
}

// BenchmarkCheckHandlerParallel shows group commit at work: concurrent
// decisions share write(2) calls.
func BenchmarkCheckHandlerParallel(b *testing.B) {
	s := newBenchServer(b, false)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) { postLoop(b, s, "/v1/check", []byte(allowBody), pb.Next) })
}

// BenchmarkCheckHandlerSyncParallel is --log-sync: one fsync per batch.
func BenchmarkCheckHandlerSyncParallel(b *testing.B) {
	s := newBenchServer(b, true)
	b.ReportAllocs()
	b.SetParallelism(16) // fsync waits on the disk, not the CPU
	b.RunParallel(func(pb *testing.PB) { postLoop(b, s, "/v1/check", []byte(allowBody), pb.Next) })
}

// BenchmarkCheckLoopback is the whole round trip over a loopback TCP
// connection with keep-alive, as ops-warden makes it.
func BenchmarkCheckLoopback(b *testing.B) {
	s := newBenchServer(b, false)
	ln := httptestServer(b, s)
	client := &http.Client{}
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Post(ln+"/v1/check", "application/json", strings.NewReader(allowBody))
		if err != nil {
			b.Fatal(err)
		}
		var buf [1024]byte
		for {
			if _, err := resp.Body.Read(buf[:]); err != nil {
				break
			}
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkDecodeRequest is the body decoder alone, reused as the handler
// reuses it.
func BenchmarkDecodeRequest(b *testing.B) {
	body := []byte(allowBody)
	var req checkRequest
	s := newBenchServer(b, false)
	snap, ctx := s.checkState().snap, map[string]any{}
	var d requestDecoder
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		clear(ctx)
		if err := d.decode(body, &req, snap, ctx); err != nil {
			b.Fatal(err)
		}
	}
}

func httptestServer(b *testing.B, h http.Handler) string {
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv.URL
}
