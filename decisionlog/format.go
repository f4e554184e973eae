// Package decisionlog is the decision log's format: the records flex-auth
// serve writes, one JSON object per line, and the hash chain that links
// them, so that a log proves itself.
//
// Every record a server writes (a decision, a not_given record, a signed
// checkpoint) ends with two members, seq and prev:
//
//	{"time":"...","decision_id":"...",...,"registry_digest":"sha256:...","seq":42,"prev":"sha256:..."}
//
// seq counts the records of the chain from 1; prev is the SHA-256 of the
// whole line before this one in the log, its newline included (64 zero
// digits before the first line). The only lines without them are the
// fragments that a write cut short leaves behind, which the server ends
// with TornMarker and the hash of the line before them: so every whole
// line is bound to the one before it, and the next record's prev binds it
// in turn. A server appending to a log continues its chain (ReadTail), and
// the first record of a reopened file links to the last line of the old
// one. A Verifier checks a chain; a Checkpoint signs its head with an SSH
// key, so that an attacker who rewrites the log and computes the hashes
// again is still found out.
//
// The package also reads the records back (Parse) and streams large logs
// through a pool of workers in order (ProcessLines), for verify and
// replay.
package decisionlog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// A Hash is the SHA-256 of a log line, its newline included.
type Hash [sha256.Size]byte

// HashOf returns the hash of line, which ends in its newline.
func HashOf(line []byte) Hash { return sha256.Sum256(line) }

// String returns h as the log writes it: "sha256:" and 64 lowercase hex
// digits.
func (h Hash) String() string { return string(h.AppendText(nil)) }

// AppendText appends h as String returns it.
func (h Hash) AppendText(b []byte) []byte {
	b = append(b, "sha256:"...)
	return hex.AppendEncode(b, h[:])
}

// IsZero reports whether h is the zero hash, the prev of a chain's first
// record.
func (h Hash) IsZero() bool { return h == Hash{} }

// ParseHash parses "sha256:" and 64 lowercase hex digits.
func ParseHash(s string) (Hash, error) { return parseHash(s) }

// parseHash is ParseHash for a string or the bytes of one: a log line's
// prev is parsed where it is, without a copy.
func parseHash[T string | []byte](s T) (Hash, error) {
	var h Hash
	if len(s) != len("sha256:")+2*len(h) || string(s[:7]) != "sha256:" {
		return h, errBadHash
	}
	digits := s[7:]
	bad := byte(0)
	for i := range h {
		hi, lo := hexValue[digits[2*i]], hexValue[digits[2*i+1]]
		bad |= hi | lo
		h[i] = hi<<4 | lo&0x0f
	}
	if bad&0xf0 != 0 {
		return Hash{}, errBadHash
	}
	return h, nil
}

var errBadHash = errors.New(`want "sha256:" and 64 lowercase hex digits`)

// hexValue maps a lowercase hex digit to its value, and every other byte
// to 0xff. A table: the verifier parses a hash on every line.
var hexValue = func() (t [256]byte) {
	for c := range t {
		switch {
		case '0' <= c && c <= '9':
			t[c] = byte(c - '0')
		case 'a' <= c && c <= 'f':
			t[c] = byte(c - 'a' + 10)
		default:
			t[c] = 0xff
		}
	}
	return t
}()

// A Head is where a chain stands after a line: Seq is the seq of the last
// record (0 before the first), Hash the hash of the last whole line (the
// zero hash before the first). The next record has seq Seq+1 and prev
// Hash. The zero Head starts a new chain.
type Head struct {
	Seq  uint64
	Hash Hash
}

// String returns "seq N sha256:...".
func (h Head) String() string { return "seq " + strconv.FormatUint(h.Seq, 10) + " " + h.Hash.String() }

// AppendChain ends a record: it appends the members that link it to the
// chain standing at h (seq h.Seq+1, prev h.Hash), the closing brace and
// the newline. The record's other members are before it in b, from its
// opening brace on, without a closing one.
func AppendChain(b []byte, h Head) []byte {
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, h.Seq+1, 10)
	b = append(b, `,"prev":"`...)
	b = h.Hash.AppendText(b)
	return append(b, "\"}\n"...)
}

// Link ends the record that starts at b[start] with AppendChain and
// returns b and the head after it.
func Link(b []byte, start int, h Head) ([]byte, Head) {
	b = AppendChain(b, h)
	return b, Head{Seq: h.Seq + 1, Hash: HashOf(b[start:])}
}

// TornMarker ends the fragment of a line whose write was cut short, before
// anything else is written. Whatever the fragment before it, the line is
// then not JSON: the quote either ends a string, and a backslash cannot
// follow, or starts one, and backslash-space is no escape. So even a
// fragment that is a whole object, cut just before its newline, is never
// read as a record, and nobody was given a decision it holds (the answer
// is sent once the whole line is written). AppendTornEnd follows it with
// the hash of the whole line before the fragment.
const TornMarker = `"\ <- cut short: not a decision`

// tornPrev follows TornMarker in a chained log.
const tornPrev = "; prev "

// AppendTornEnd appends what ends a fragment: TornMarker, the hash of the
// line before the fragment (h.Hash), and a newline. The line is then
// bound to the one before it, and the next record's prev binds it.
func AppendTornEnd(b []byte, h Head) []byte {
	b = append(b, TornMarker...)
	b = append(b, tornPrev...)
	b = h.Hash.AppendText(b)
	return append(b, '\n')
}

// tornEndLen is the length of what AppendTornEnd appends.
const tornEndLen = len(TornMarker) + len(tornPrev) + len("sha256:") + 2*sha256.Size + 1

// TornEnd reports whether line, which ends in its newline, is a fragment
// ended by AppendTornEnd, and returns the hash it names. A fragment ended
// by an earlier flex-auth, with TornMarker alone, is torn with no hash
// (chained false).
func TornEnd(line []byte) (prev Hash, torn, chained bool) {
	n := len(line)
	if n >= tornEndLen {
		end := line[n-tornEndLen:]
		if string(end[:len(TornMarker)+len(tornPrev)]) == TornMarker+tornPrev {
			h, err := ParseHash(string(end[len(TornMarker)+len(tornPrev) : tornEndLen-1]))
			if err == nil && end[tornEndLen-1] == '\n' {
				return h, true, true
			}
		}
	}
	if n >= len(TornMarker)+1 && string(line[n-len(TornMarker)-1:]) == TornMarker+"\n" {
		return Hash{}, true, false
	}
	return Hash{}, false, false
}

// TimeLayout is the layout of a record's time: RFC 3339 in UTC with a
// fixed nine-digit fraction, so that lines sort as text and every time has
// a fraction.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// AppendTime appends t in TimeLayout. It is AppendFormat without the
// layout interpretation, which was a third of the cost of a log line.
func AppendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeLayout)
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, t.Nanosecond(), 9)
	return append(b, 'Z')
}

// appendDigits appends n, which is not negative, zero-padded to width
// digits.
func appendDigits(b []byte, n, width int) []byte {
	b = append(b, "000000000"[:width]...)
	for i := len(b) - 1; n > 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return b
}

// NotGivenWhy is the "why" of a not_given record written by serve.
const NotGivenWhy = "written, but the request was answered 503 decision_log_unavailable"

// AppendNotGiven appends the start of a not_given record (AppendChain ends
// it): a record naming decisions whose lines are in the log although
// their requests were answered 503, so that nobody was given them. It has
// none of a decision's members but time, so no reader takes it for a
// decision.
func AppendNotGiven(b []byte, now time.Time, ids [][]byte) []byte {
	b = append(b, `{"time":"`...)
	b = AppendTime(b, now)
	b = append(b, `","not_given":[`...)
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b, _ = jsontext.AppendQuote(b, id)
	}
	b = append(b, `],"why":`...)
	b, _ = jsontext.AppendQuote(b, NotGivenWhy)
	return b
}
