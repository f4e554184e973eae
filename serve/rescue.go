package serve

import (
	"bytes"
	"net/http"
	"strconv"
)

// record writes e's line, the decision for the request r, to the decision
// log, answering w 503 decision_log_unavailable when it cannot; it
// reports whether the line was written. The handler of an HTTP/1 request
// may lead the log's writes; if it blocks in the kernel there, the
// watchdog answers w itself (rescue).
func (s *Server) record(w http.ResponseWriter, r *http.Request, e *logEntry) bool {
	if r.ProtoMajor == 1 {
		e.w = w
	}
	err := s.log.write(e)
	e.w = nil
	switch {
	case err == nil:
		return true
	case err != errRescued:
		s.writeError(w, errLogUnavailable)
	}
	return false
}

// rescue answers a request 503 decision_log_unavailable from the
// decision log's watchdog, while the request's handler is blocked in a
// write(2) to the log that does not return. The handler does not touch w
// until rescue has returned. The answer is complete without the handler:
// it has a Content-Length, and Connection: close, since the connection
// stays with the blocked handler and could not serve a next request.
func (s *Server) rescue(w http.ResponseWriter) {
	var c capture
	s.writeError(&c, errLogUnavailable)
	h := w.Header()
	for k, v := range c.header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.Itoa(c.body.Len()))
	h.Set("Connection", "close")
	w.WriteHeader(c.status)
	w.Write(c.body.Bytes())
	if err := http.NewResponseController(w).Flush(); err != nil {
		s.logger.Debug("answering a request whose decision log write is stuck", "err", err)
	}
}

// capture is a ResponseWriter that keeps what is written to it.
type capture struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (c *capture) Header() http.Header {
	if c.header == nil {
		c.header = http.Header{}
	}
	return c.header
}

func (c *capture) WriteHeader(status int) { c.status = status }

func (c *capture) Write(p []byte) (int, error) { return c.body.Write(p) }
