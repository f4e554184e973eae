package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/go-json-experiment/json/jsontext"
)

// The load generator speaks HTTP/1.1 over raw connections: requests are
// encoded once before a run, and responses are parsed by the small reader
// below, which reuses one body buffer per connection. net/http's client
// costs several microseconds and a dozen allocations per request (header
// maps, a goroutine handoff per read); on a 2-core machine the generator
// shares the CPU with the server under test, so every microsecond it spends
// is one the server does not get.

// encodeRequest returns the bytes of one HTTP/1.1 keep-alive request.
func encodeRequest(method, host, path, contentType string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, host)
	if body != nil {
		fmt.Fprintf(&b, "Content-Type: %s\r\nContent-Length: %d\r\n", contentType, len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

// A response is a parsed HTTP response. body aliases the reader's buffer
// and is valid until the next readResponse on the same buffer.
type response struct {
	status int
	body   []byte
	// close reports whether the server will close the connection after
	// this response.
	close bool
}

var errMalformed = errors.New("malformed HTTP response")

// readResponse reads one response to a request that was not HEAD. It
// understands Content-Length, chunked transfer encoding and, failing both,
// a body delimited by the end of the connection. buf is reused for the
// body when large enough.
func readResponse(br *bufio.Reader, buf []byte) (response, []byte, error) {
	var r response
	line, err := br.ReadSlice('\n')
	if err != nil {
		return r, buf, eofIsUnexpected(err)
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return r, buf, fmt.Errorf("%w: status line %q", errMalformed, trimCRLF(line))
	}
	r.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil || r.status < 100 {
		return r, buf, fmt.Errorf("%w: status line %q", errMalformed, trimCRLF(line))
	}
	r.close = line[7] == '0' // HTTP/1.0 closes unless told otherwise
	length := -1
	chunked := false
	for {
		line, err = br.ReadSlice('\n')
		if err != nil {
			return r, buf, eofIsUnexpected(err)
		}
		line = trimCRLF(line)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return r, buf, fmt.Errorf("%w: header line %q", errMalformed, line)
		}
		name, value := line[:colon], bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.Atoi(string(value))
			if err != nil || length < 0 {
				return r, buf, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = containsFold(value, "chunked")
		case bytes.EqualFold(name, []byte("Connection")):
			if containsFold(value, "close") {
				r.close = true
			} else if containsFold(value, "keep-alive") {
				r.close = false
			}
		}
	}
	switch {
	case r.status == 204 || r.status == 304 || r.status < 200:
		r.body = buf[:0]
	case chunked:
		r.body, err = readChunked(br, buf[:0])
	case length >= 0:
		if cap(buf) < length {
			buf = make([]byte, length)
		}
		r.body = buf[:length]
		_, err = io.ReadFull(br, r.body)
	default:
		r.close = true
		var b bytes.Buffer
		_, err = b.ReadFrom(br)
		r.body = b.Bytes()
	}
	if err != nil {
		return r, buf, eofIsUnexpected(err)
	}
	if cap(r.body) > cap(buf) {
		buf = r.body[:0]
	}
	return r, buf, nil
}

// readChunked reads a chunked body into dst.
func readChunked(br *bufio.Reader, dst []byte) ([]byte, error) {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return dst, err
		}
		line = trimCRLF(line)
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseUint(string(bytes.TrimSpace(line)), 16, 31)
		if err != nil {
			return dst, fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if size == 0 {
			// Trailers, then the empty line.
			for {
				line, err = br.ReadSlice('\n')
				if err != nil {
					return dst, err
				}
				if len(trimCRLF(line)) == 0 {
					return dst, nil
				}
			}
		}
		n := len(dst)
		dst = append(dst, make([]byte, size)...)
		if _, err := io.ReadFull(br, dst[n:]); err != nil {
			return dst, err
		}
		line, err = br.ReadSlice('\n')
		if err != nil {
			return dst, err
		}
		if len(trimCRLF(line)) != 0 {
			return dst, fmt.Errorf("%w: data after a chunk", errMalformed)
		}
	}
}

func eofIsUnexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func trimCRLF(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

func containsFold(b []byte, word string) bool {
	return bytes.Contains(bytes.ToLower(b), []byte(word))
}

// A decisionReader reads decision answers with jsontext, in place; pooled,
// so that checking an answer allocates nothing.
type decisionReader struct {
	dec jsontext.Decoder
	src bytes.Buffer
}

var decisionReaders = sync.Pool{New: func() any { return new(decisionReader) }}

// decisionMembers returns the effect and reason of a decision answer: the
// string members of that name of a body that is one JSON object. ok is
// false when the body is not one, or has no string effect; reason is nil
// when it has no string reason.
func decisionMembers(body []byte) (effect, reason []byte, ok bool) {
	r := decisionReaders.Get().(*decisionReader)
	defer decisionReaders.Put(r)
	r.src = *bytes.NewBuffer(body)
	r.dec.Reset(&r.src)
	if tok, err := r.dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, nil, false
	}
	for r.dec.PeekKind() == '"' {
		name, err := r.dec.ReadValue()
		if err != nil {
			return nil, nil, false
		}
		var dst *[]byte
		switch string(name) {
		case `"effect"`:
			dst = &effect
		case `"reason"`:
			dst = &reason
		}
		v, err := r.dec.ReadValue()
		if err != nil {
			return nil, nil, false
		}
		switch {
		case dst == nil || v.Kind() != '"':
		case bytes.IndexByte(v, '\\') < 0:
			*dst = v[1 : len(v)-1] // the body itself: r reads it in place
		default:
			*dst, _ = jsontext.AppendUnquote(nil, v)
		}
	}
	if _, err := r.dec.ReadToken(); err != nil || len(bytes.TrimLeft(body[r.dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, nil, false
	}
	return effect, reason, effect != nil
}
