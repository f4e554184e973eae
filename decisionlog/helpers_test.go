package decisionlog

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/internal/sshsig"
	"github.com/coulomb/flex-auth/internal/sshsig/sshsigtest"
)

// t0 is when the test logs start.
var t0 = time.Date(2026, 6, 24, 9, 12, 5, 123456789, time.UTC)

// A builder writes a chained log the way serve does.
type builder struct {
	b      []byte
	head   Head
	n      int // records written, for ids and times
	signer *Signer
}

func (l *builder) now() time.Time { return t0.Add(time.Duration(l.n) * time.Millisecond) }

// record ends the record started at start.
func (l *builder) record(start int) {
	l.b, l.head = Link(l.b, start, l.head)
	l.n++
}

func (l *builder) decision() string {
	start := len(l.b)
	id := fmt.Sprintf("decision:%016x", l.n+1)
	l.b = append(l.b, `{"time":"`...)
	l.b = AppendTime(l.b, l.now())
	l.b = fmt.Appendf(l.b, `","decision_id":%q,"subject":"iam:agt-state-hub-bridge","action":"ssh.sign","resource":"agt-state-hub-bridge","context":{"ttl_hours":%d},"effect":"allow","reason":"signing_policy_matched","policy":"ops-warden/ssh-signing","policy_digest":"sha256:%064x","registry_digest":"sha256:%064x"`,
		id, 1+l.n%24, 1, 2)
	l.record(start)
	return id
}

func (l *builder) notGiven(ids ...string) {
	start := len(l.b)
	var bs [][]byte
	for _, id := range ids {
		bs = append(bs, []byte(id))
	}
	l.b = AppendNotGiven(l.b, l.now(), bs)
	l.record(start)
}

func (l *builder) checkpoint(t testing.TB) {
	t.Helper()
	start := len(l.b)
	var err error
	if l.b, err = l.signer.AppendCheckpoint(l.b, l.now(), l.head); err != nil {
		t.Fatal(err)
	}
	l.record(start)
}

// torn writes a fragment and ends it, as the next write after a failed
// one does.
func (l *builder) torn(fragment string) {
	start := len(l.b)
	l.b = append(l.b, fragment...)
	l.b = AppendTornEnd(l.b, l.head)
	l.head.Hash = HashOf(l.b[start:])
}

func (l *builder) bytes() []byte { return bytes.Clone(l.b) }

// newKey returns a signer and the trusted keys holding its public key.
func newKey(t testing.TB, seed byte) (*Signer, *sshsig.Keys) {
	t.Helper()
	s, keys := sshsigtest.Key(t, seed)
	return NewSigner(s), keys
}

// lines splits a log into its lines, newlines kept.
func lines(data []byte) []string {
	ls := strings.SplitAfter(string(data), "\n")
	if ls[len(ls)-1] == "" {
		ls = ls[:len(ls)-1]
	}
	return ls
}

func join(ls []string) []byte {
	s := strings.Join(ls, "")
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return []byte(s)
}

// rechain links lines again from their first, as an attacker who changed
// some and has no signing key does: every record gets the seq and prev
// that follow, every torn line the hash of the line before it, every
// checkpoint the text of its new place, with its old signature. With
// stolen, the signing key, every checkpoint is signed anew.
func rechain(t *testing.T, ls []string, stolen *Signer) []byte {
	t.Helper()
	l := builder{signer: stolen}
	var p Parser
	for _, line := range ls {
		var r Record
		if err := p.Parse([]byte(line), &r); err != nil {
			t.Fatalf("rechain: %v: %s", err, line)
		}
		switch {
		case r.Kind == Torn:
			i := strings.LastIndex(line, TornMarker)
			l.torn(line[:i])
		case r.Kind == Checkpoint && stolen != nil:
			l.checkpoint(t)
		case r.Kind == Checkpoint:
			start := len(l.b)
			ts, _ := time.Parse(time.RFC3339Nano, String(r.Time))
			l.b = append(l.b, `{"time":`...)
			l.b = append(l.b, r.Time...)
			l.b = append(l.b, `,"checkpoint":`...)
			l.b = fmt.Appendf(l.b, "%q", CheckpointMessage(l.head, ts))
			l.b = append(l.b, `,"signature":`...)
			l.b = append(l.b, r.Signature...)
			l.b = append(l.b, `,"key":`...)
			l.b = append(l.b, r.Key...)
			l.record(start)
		default:
			i := strings.LastIndex(line, `,"seq":`)
			start := len(l.b)
			l.b = append(l.b, line[:i]...)
			l.record(start)
		}
	}
	return l.bytes()
}
