package chaos

import (
	"bytes"
	"fmt"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/coulomb/flex-auth/client"
	"github.com/coulomb/flex-auth/decisionlog"
)

// A Received is a decision a client was given: a 200 answer of POST
// /v1/check.
type Received struct {
	ID             string
	Effect         string
	Reason         string
	Policy         string
	PolicyDigest   string
	RegistryDigest string
}

// A Line is a decision log line that is a decision: a whole line (it ends
// in a newline) holding one JSON object with exactly the members CONTRACT
// section 6 lists (and the chain's seq and prev), each once, by its exact
// name, of the right type, and the members it shares with a decision answer well formed as
// client.Decision.Check has them. Lines are read with the JSON library
// the server writes them with, strictly (no duplicate or unknown member,
// valid UTF-8, nothing after the object).
type Line struct {
	Time           string         `json:"time"`
	ID             string         `json:"decision_id"`
	Subject        string         `json:"subject"`
	Action         string         `json:"action"`
	Resource       string         `json:"resource"`
	Context        jsontext.Value `json:"context"`
	Effect         string         `json:"effect"`
	Reason         string         `json:"reason"`
	Policy         string         `json:"policy"`
	PolicyDigest   string         `json:"policy_digest"`
	RegistryDigest string         `json:"registry_digest"`
	Seq            uint64         `json:"seq"`
	Prev           string         `json:"prev"`
}

// lineMembers are the members every decision line has, and no other but
// the chain's (chainMembers), which a line has both of or neither.
var (
	lineMembers  = []string{"time", "decision_id", "subject", "action", "resource", "context", "effect", "reason", "policy", "policy_digest", "registry_digest"}
	chainMembers = []string{"seq", "prev"}
)

// A Log is one or more decision log files, read: the decisions by id, and
// the lines that are not decisions (fragments of writes cut short by a
// crash or a failed write; the last line of a file without its newline).
type Log struct {
	Decisions map[string]Line
	// Torn holds the lines that are not decisions, with their file and
	// line number.
	Torn []TornLine
	// Duplicates lists decision ids logged more than once.
	Duplicates []string
	// NotGiven holds the decision ids named by not_given records: lines
	// the server wrote although it answered their requests 503.
	NotGiven map[string]bool
	// Checkpoints counts the signed checkpoints.
	Checkpoints int

	// chains verify the hash chains of the files read: one for the files
	// of a log in the order written (Add), one more for each log of its
	// own (AddSeparate).
	chains []*decisionlog.Verifier
}

// A TornLine is a log line that is not a decision.
type TornLine struct {
	File string
	Line int
	Text []byte
	Why  string
}

// NewLog returns an empty Log; Add reads files into it, in the order they
// were written, and verifies their hash chain as it goes.
func NewLog() *Log {
	return &Log{Decisions: map[string]Line{}, NotGiven: map[string]bool{}}
}

// Chain returns the verification of the hash chains of the files read:
// the first that is not intact, or else the last.
func (l *Log) Chain() *decisionlog.Result {
	var last *decisionlog.Result
	for _, c := range l.chains {
		if last = c.Result(); !last.Intact() {
			return last
		}
	}
	return last
}

// AddSeparate reads a decision log file that is a log of its own, whose
// hash chain does not continue the files read before it: another
// replica's, or another run's of a server logging to standard output.
func (l *Log) AddSeparate(name string, data []byte) {
	l.chains = append(l.chains, decisionlog.NewVerifier(decisionlog.Options{}))
	l.Add(name, data)
}

// ReadLog reads one decision log file's contents.
func ReadLog(name string, data []byte) *Log {
	l := NewLog()
	l.Add(name, data)
	return l
}

// Add reads one decision log file's contents into l.
func (l *Log) Add(name string, data []byte) {
	if len(l.chains) == 0 {
		l.chains = append(l.chains, decisionlog.NewVerifier(decisionlog.Options{}))
	}
	l.chains[len(l.chains)-1].Add(name, bytes.NewReader(data)) // a bytes.Reader does not fail
	var p decisionlog.Parser
	var rec decisionlog.Record
	n := 0
	for len(data) > 0 {
		n++
		line := data
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			data = nil
			l.Torn = append(l.Torn, TornLine{name, n, line, "last line without a newline: a write cut short"})
			break
		}
		line, data = data[:i], data[i+1:]
		if p.Parse(line, &rec) == nil && rec.Kind == decisionlog.Checkpoint {
			l.Checkpoints++
			continue
		}
		if ids, ok := parseNotGiven(line); ok {
			for _, id := range ids {
				l.NotGiven[id] = true
			}
			continue
		}
		d, err := parseLine(line)
		if err != nil {
			l.Torn = append(l.Torn, TornLine{name, n, line, err.Error()})
			continue
		}
		if _, dup := l.Decisions[d.ID]; dup {
			l.Duplicates = append(l.Duplicates, d.ID)
		}
		l.Decisions[d.ID] = d
	}
}

// parseNotGiven parses a line (without its newline) as a not_given
// record: {"time", "not_given": [ids], "why"}, and the chain's seq and
// prev.
func parseNotGiven(line []byte) ([]string, bool) {
	var r struct {
		Time     string   `json:"time"`
		NotGiven []string `json:"not_given"`
		Why      string   `json:"why"`
		Seq      uint64   `json:"seq"`
		Prev     string   `json:"prev"`
	}
	if json.Unmarshal(line, &r, json.RejectUnknownMembers(true)) != nil || r.NotGiven == nil || r.Why == "" {
		return nil, false
	}
	if _, err := time.Parse(time.RFC3339Nano, r.Time); err != nil {
		return nil, false
	}
	return r.NotGiven, true
}

// parseLine parses a line (without its newline) as a decision.
func parseLine(line []byte) (Line, error) {
	var d Line
	var members map[string]jsontext.Value
	if err := json.Unmarshal(line, &members); err != nil {
		return d, fmt.Errorf("not a JSON object: %v", err)
	}
	for _, m := range lineMembers {
		if _, ok := members[m]; !ok {
			return d, fmt.Errorf("no %q member", m)
		}
	}
	want := len(lineMembers)
	if _, ok := members[chainMembers[0]]; ok {
		want += len(chainMembers)
		if _, ok := members[chainMembers[1]]; !ok {
			return d, fmt.Errorf("no %q member with %q", chainMembers[1], chainMembers[0])
		}
	}
	if len(members) != want {
		return d, fmt.Errorf("%d members, want %d", len(members), want)
	}
	if err := json.Unmarshal(line, &d, json.RejectUnknownMembers(true)); err != nil {
		return d, fmt.Errorf("a member of the wrong type: %v", err)
	}
	if _, err := time.Parse(time.RFC3339Nano, d.Time); err != nil {
		return d, fmt.Errorf("time: %v", err)
	}
	if len(d.Context) == 0 || d.Context[0] != '{' {
		return d, fmt.Errorf("context %s is not an object", d.Context)
	}
	c := client.Decision{ID: d.ID, Effect: d.Effect, Reason: d.Reason, Policy: d.Policy, PolicyDigest: d.PolicyDigest, RegistryDigest: d.RegistryDigest}
	return d, c.Check()
}

// A Verdict compares the decisions clients received with a Log.
type Verdict struct {
	Received int // decisions received
	Logged   int // decisions in the log
	// Lost are received decisions missing from the log, or logged with
	// another effect, reason, policy or digest than the client was given.
	Lost []string
	// UnloggedAllows counts the allows among Lost.
	UnloggedAllows int
	// TornWithReceived lists torn lines that hold the id of a decision a
	// client received: its record was cut short.
	TornWithReceived []string
	// Duplicates are decision ids logged more than once.
	Duplicates []string
	// GivenNotGiven lists received decisions that a not_given record
	// says nobody was given.
	GivenNotGiven []string
	// Extra counts logged decisions no client received (answered to a
	// client that went away, or logged before a crash cut the answer)
	// and that no not_given record names. They are not a failure: the
	// log may know more than the clients.
	Extra int
	// Withdrawn counts logged decisions that not_given records name.
	Withdrawn int
	// Chain is the verification of the log's hash chain, which must be
	// intact.
	Chain *decisionlog.Result
}

// OK reports whether nothing a client received is missing from the log.
func (v *Verdict) OK() bool {
	return len(v.Lost) == 0 && v.UnloggedAllows == 0 && len(v.TornWithReceived) == 0 && len(v.Duplicates) == 0 && len(v.GivenNotGiven) == 0 &&
		(v.Chain == nil || v.Chain.Intact())
}

// Verify checks that every received decision is in the log with what the
// client was given, and that no torn line holds one.
func (l *Log) Verify(received []Received) *Verdict {
	v := &Verdict{Received: len(received), Logged: len(l.Decisions), Duplicates: l.Duplicates, Chain: l.Chain()}
	seen := make(map[string]bool, len(received))
	for _, r := range received {
		seen[r.ID] = true
		if l.NotGiven[r.ID] {
			v.GivenNotGiven = append(v.GivenNotGiven, r.ID)
		}
		d, ok := l.Decisions[r.ID]
		if !ok || d.Effect != r.Effect || d.Reason != r.Reason || d.Policy != r.Policy ||
			d.PolicyDigest != r.PolicyDigest || d.RegistryDigest != r.RegistryDigest {
			v.Lost = append(v.Lost, r.ID)
			if r.Effect == "allow" {
				v.UnloggedAllows++
			}
		}
		for _, t := range l.Torn {
			if bytes.Contains(t.Text, []byte(r.ID)) {
				v.TornWithReceived = append(v.TornWithReceived, fmt.Sprintf("%s:%d: %s", t.File, t.Line, r.ID))
			}
		}
	}
	for id := range l.Decisions {
		switch {
		case l.NotGiven[id]:
			v.Withdrawn++
		case !seen[id]:
			v.Extra++
		}
	}
	return v
}

// String summarizes the verdict in one line.
func (v *Verdict) String() string {
	return fmt.Sprintf("received %d, logged %d, lost %d, unlogged allows %d, torn lines holding a received decision %d, duplicates %d, received but marked not given %d, logged and marked not given %d, logged but not received %d, chain %s",
		v.Received, v.Logged, len(v.Lost), v.UnloggedAllows, len(v.TornWithReceived), len(v.Duplicates), len(v.GivenNotGiven), v.Withdrawn, v.Extra, v.ChainState())
}

// ChainState says whether the hash chain is intact, and where it stands
// or where it broke.
func (v *Verdict) ChainState() string {
	switch c := v.Chain; {
	case c == nil:
		return "not verified"
	case c.Problem != nil:
		return "broken at " + c.Problem.Error()
	case !c.Intact():
		return "missing a recorded head"
	default:
		return "intact (" + c.Head.String() + ")"
	}
}

func (t TornLine) String() string {
	text := t.Text
	if len(text) > 80 {
		text = append(text[:60:60], "..."...)
	}
	return fmt.Sprintf("%s:%d: %q (%s)", t.File, t.Line, text, t.Why)
}
