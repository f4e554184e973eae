package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-json-experiment/json"

	"github.com/coulomb/flex-auth/internal/redact"
	"github.com/coulomb/flex-auth/internal/termsafe"
)

// An UnreachableError reports that no complete answer came back: the
// connection was refused or reset, the name did not resolve, TLS failed,
// or the call ran out of time.
type UnreachableError struct {
	Op      string        // "POST http://host/v1/check"
	Timeout time.Duration // the client's per-call limit, for the message
	Err     error
}

func (e *UnreachableError) Error() string {
	if e.TimedOut() && e.Timeout > 0 {
		return fmt.Sprintf("%s: unreachable: no answer within %s", e.Op, e.Timeout)
	}
	return fmt.Sprintf("%s: unreachable: %v", e.Op, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// TimedOut reports whether the call ran out of time rather than failed.
func (e *UnreachableError) TimedOut() bool {
	var te interface{ Timeout() bool }
	return errors.Is(e.Err, context.DeadlineExceeded) || errors.As(e.Err, &te) && te.Timeout()
}

// A StatusError reports an answer with a status other than 200: the
// service (or a proxy in front of it) said error. Code and Message come from
// the contract's error envelope when the body is one. Code, Message,
// Location and Body are fit to print: cut to a few hundred bytes, with
// what a terminal would act on escaped (termsafe.Line), and Location
// without credentials (redact.URL).
type StatusError struct {
	Op         string
	StatusCode int
	Code       string // "invalid_request", "decision_log_unavailable", ...
	Message    string
	Location   string // of a redirect
	Body       string // a short excerpt when the body is no envelope
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: server answered %d %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	switch {
	case e.Code != "":
		fmt.Fprintf(&b, ": %s: %s", e.Code, e.Message)
	case e.Location != "":
		fmt.Fprintf(&b, " to %s (redirects are not followed; use the final url)", e.Location)
	case e.Body != "":
		fmt.Fprintf(&b, ": \"%s\"", e.Body)
	}
	return b.String()
}

// A ProtocolError reports a 200 answer that breaks the contract: not JSON,
// a missing or ill-formed member, an effect other than "allow" or "deny".
// It is never read as a decision.
type ProtocolError struct {
	Op  string
	Err error
}

func (e *ProtocolError) Error() string { return fmt.Sprintf("%s: malformed answer: %v", e.Op, e.Err) }

func (e *ProtocolError) Unwrap() error { return e.Err }

const maxExcerpt = 200

func newStatusError(op string, resp *http.Response, body []byte) *StatusError {
	e := &StatusError{Op: op, StatusCode: resp.StatusCode}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		e.Location = printable(redact.URL(resp.Header.Get("Location")))
	}
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error.Code != "" {
		e.Code, e.Message = printable(env.Error.Code), printable(env.Error.Message)
		return e
	}
	e.Body = printable(string(body))
	return e
}

// printable shortens s and escapes what a terminal would act on
// (termsafe.Line), so that whatever a broken server or proxy sends cannot
// mangle a terminal or a log line.
func printable(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > maxExcerpt {
		cut := maxExcerpt
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return termsafe.Line(s)
}
