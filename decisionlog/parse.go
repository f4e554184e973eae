package decisionlog

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/go-json-experiment/json/jsontext"
)

// A Kind says what a log line is.
type Kind uint8

// The kinds of log line.
const (
	// Invalid is a line that is not a record: not a JSON object, or an
	// object without the members of any record.
	Invalid Kind = iota
	// Decision is a decision record: it has a decision_id.
	Decision
	// NotGiven is a not_given record, naming decisions whose requests
	// were answered 503 although their lines reached the log.
	NotGiven
	// Checkpoint is a signed checkpoint of the chain.
	Checkpoint
	// Torn is a fragment of a line whose write was cut short, ended by
	// TornMarker: not a record.
	Torn
)

func (k Kind) String() string {
	switch k {
	case Decision:
		return "decision"
	case NotGiven:
		return "not_given record"
	case Checkpoint:
		return "checkpoint"
	case Torn:
		return "torn line"
	}
	return "invalid line"
}

// A Record is a log line, parsed. The member values are the JSON text of
// each member as it is in the line (a string with its quotes), nil when
// the member is absent; they alias the line.
type Record struct {
	Kind Kind
	// Chained reports whether the line carries the chain: seq and prev
	// for a record, the hash after TornMarker for a torn line.
	Chained bool
	// Seq is the record's seq; 0 for a torn line.
	Seq uint64
	// Prev is the hash of the line before: the record's prev, or the one
	// a torn line names.
	Prev Hash

	Time, DecisionID, Subject, Action, Resource, Context jsontext.Value
	Effect, Reason, Policy, PolicyDigest, RegistryDigest jsontext.Value
	// DataDigest is an AuthZEN model package's data_digest (its
	// entities document), where a registry package has
	// registry_digest; AuthZEN is the authzen member of a decision made
	// on the AuthZEN API (endpoint, batch, and the entities as decided).
	DataDigest, AuthZEN            jsontext.Value
	NotGivenIDs, Why               jsontext.Value
	CheckpointText, Signature, Key jsontext.Value
}

// A Parser parses log lines. The zero value is ready to use; reusing one
// saves its decoder's allocations. A Parser is not safe for concurrent
// use.
type Parser struct {
	dec jsontext.Decoder
	src bytes.Buffer
}

// maxSeqDigits bounds a seq: 20 digits hold every uint64.
const maxSeqDigits = 20

// Parse parses line, which ends in its newline (a last line without one
// is parsed as it is), into r. A line that is not a record is an error
// saying why, with r.Kind Invalid. Parse checks the JSON text (RFC 8259,
// and RFC 7493: valid UTF-8, no duplicate member names), and the chain
// members' form; a record's other members are its reader's to check.
func (p *Parser) Parse(line []byte, r *Record) error {
	*r = Record{}
	if prev, torn, chained := TornEnd(line); torn {
		r.Kind, r.Prev, r.Chained = Torn, prev, chained
		return nil
	}
	body := bytes.TrimSuffix(line, []byte("\n"))
	// One call to check the whole text is several times faster than
	// reading it member by member with the decoder; once it is known to
	// be valid, walking its members is a matter of finding where each
	// ends. Duplicate names are checked below, among the members read:
	// the decoder's check of every name costs a fifth of the parse.
	if !jsontext.Value(body).IsValid(jsontext.AllowDuplicateNames(true)) {
		return p.invalid(body)
	}
	if len(body) == 0 || body[0] != '{' {
		return errors.New("not a JSON object")
	}
	var seq, prev jsontext.Value
	dup := false
	for name, v := range members(body) {
		switch string(name) {
		case `"seq"`:
			dup = dup || seq != nil
			seq = v
		case `"prev"`:
			dup = dup || prev != nil
			prev = v
		case `"time"`:
			dup = dup || r.Time != nil
			r.Time = v
		case `"decision_id"`:
			dup = dup || r.DecisionID != nil
			r.DecisionID = v
		case `"subject"`:
			dup = dup || r.Subject != nil
			r.Subject = v
		case `"action"`:
			dup = dup || r.Action != nil
			r.Action = v
		case `"resource"`:
			dup = dup || r.Resource != nil
			r.Resource = v
		case `"context"`:
			dup = dup || r.Context != nil
			r.Context = v
		case `"effect"`:
			dup = dup || r.Effect != nil
			r.Effect = v
		case `"reason"`:
			dup = dup || r.Reason != nil
			r.Reason = v
		case `"policy"`:
			dup = dup || r.Policy != nil
			r.Policy = v
		case `"policy_digest"`:
			dup = dup || r.PolicyDigest != nil
			r.PolicyDigest = v
		case `"registry_digest"`:
			dup = dup || r.RegistryDigest != nil
			r.RegistryDigest = v
		case `"data_digest"`:
			dup = dup || r.DataDigest != nil
			r.DataDigest = v
		case `"authzen"`:
			dup = dup || r.AuthZEN != nil
			r.AuthZEN = v
		case `"not_given"`:
			dup = dup || r.NotGivenIDs != nil
			r.NotGivenIDs = v
		case `"why"`:
			dup = dup || r.Why != nil
			r.Why = v
		case `"checkpoint"`:
			dup = dup || r.CheckpointText != nil
			r.CheckpointText = v
		case `"signature"`:
			dup = dup || r.Signature != nil
			r.Signature = v
		case `"key"`:
			dup = dup || r.Key != nil
			r.Key = v
		}
	}
	if dup {
		return p.invalid(body) // says which
	}
	switch {
	case r.DecisionID != nil:
		r.Kind = Decision
	case r.NotGivenIDs != nil:
		r.Kind = NotGiven
	case r.CheckpointText != nil:
		r.Kind = Checkpoint
	default:
		return errors.New("a JSON object, but not a record: no decision_id, not_given or checkpoint member")
	}
	switch {
	case seq == nil && prev == nil:
		return nil
	case seq == nil:
		return fmt.Errorf("%s with prev but no seq", r.Kind)
	case prev == nil:
		return fmt.Errorf("%s with seq but no prev", r.Kind)
	}
	n, ok := parseSeq(seq)
	if !ok {
		r.Kind = Invalid
		return fmt.Errorf("seq %s: want a whole number from 1", seq)
	}
	if prev.Kind() != '"' || bytes.IndexByte(prev, '\\') >= 0 {
		r.Kind = Invalid
		return fmt.Errorf("prev %s: want a string", prev)
	}
	h, err := parseHash([]byte(prev[1 : len(prev)-1]))
	if err != nil {
		r.Kind = Invalid
		return fmt.Errorf("prev %s: %v", prev, err)
	}
	r.Chained, r.Seq, r.Prev = true, n, h
	return nil
}

// invalid says why body is not valid JSON, with the decoder's error.
func (p *Parser) invalid(body []byte) error {
	p.src = *bytes.NewBuffer(body)
	p.dec.Reset(&p.src)
	if _, err := p.dec.ReadValue(); err != nil {
		return fmt.Errorf("not JSON: %v", jsonError(err))
	}
	if _, err := p.dec.ReadToken(); err != io.EOF {
		return errors.New("not JSON: data after the value")
	}
	return errors.New("not JSON")
}

// members yields the name and value of each member of obj, a valid JSON
// object without white space around it: the name as a JSON string (with
// its quotes, unescaped when it has escapes), the value as its JSON
// text. It relies on obj being valid: it only finds where each string,
// object and array ends.
func members(obj []byte) func(yield func(name, value jsontext.Value) bool) {
	return func(yield func(name, value jsontext.Value) bool) {
		i := skipSpace(obj, 1)
		for i < len(obj) && obj[i] == '"' {
			end := stringEnd(obj, i)
			name := jsontext.Value(obj[i:end])
			if bytes.IndexByte(name, '\\') >= 0 {
				// Not a name flex-auth writes; compare it decoded.
				u, _ := jsontext.AppendUnquote(nil, name)
				name, _ = jsontext.AppendQuote(nil, u)
			}
			i = skipSpace(obj, end)
			i = skipSpace(obj, i+1) // ':'
			end = valueEnd(obj, i)
			if !yield(name, obj[i:end]) {
				return
			}
			i = skipSpace(obj, end)
			if i < len(obj) && obj[i] == ',' {
				i = skipSpace(obj, i+1)
			}
		}
	}
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at
// b[i]: past the first quote not escaped by a backslash.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		i += q
		escapes := 0
		for j := i - 1; b[j] == '\\'; j-- {
			escapes++
		}
		if escapes%2 == 0 {
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return i
}

// parseSeq parses a seq: a JSON integer from 1, without sign, fraction or
// exponent.
func parseSeq(v []byte) (uint64, bool) {
	if len(v) == 0 || len(v) > maxSeqDigits || v[0] == '0' {
		return 0, false
	}
	var n uint64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// jsonError is a jsontext error without the package's prefix.
func jsonError(err error) error {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) {
		return fmt.Errorf("at byte %d: %v", se.ByteOffset, se.Err)
	}
	return err
}

// String returns the content of a JSON string value, or "" when v is not
// a string.
func String(v jsontext.Value) string {
	if v.Kind() != '"' {
		return ""
	}
	if bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1])
	}
	b, err := jsontext.AppendUnquote(nil, v)
	if err != nil {
		return ""
	}
	return string(b)
}
