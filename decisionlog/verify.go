package decisionlog

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/coulomb/flex-auth/internal/sshsig"
)

// Options configure a Verifier.
type Options struct {
	// Keys, when set, are trusted to sign checkpoints: every checkpoint
	// must be signed by one of them. Without Keys, checkpoints are
	// checked against their place in the chain but their signatures are
	// not.
	Keys *sshsig.Keys
	// Heads are chain heads recorded from the server (/healthz or
	// /metrics) by an outside system: each must be where the chain stood
	// after some line of the log.
	Heads []Head
	// Now is when signatures are checked, for keys valid for a time
	// only; zero is time.Now.
	Now time.Time
	// Workers hash and parse lines; 0 is GOMAXPROCS.
	Workers int
}

// A Position is a line of a log file.
type Position struct {
	File string
	Line int // 1-based
}

func (p Position) String() string { return p.File + ":" + strconv.Itoa(p.Line) }

// A Problem is the first line at which a log is found not to be what the
// server wrote.
type Problem struct {
	Position
	Why string
}

func (p *Problem) Error() string { return p.Position.String() + ": " + p.Why }

// A TornLine is a line that is not a record: a fragment of a write cut
// short.
type TornLine struct {
	Position
	// Last reports a last line without a newline (a write in progress,
	// or cut short by a crash), as opposed to a fragment the server
	// ended with TornMarker.
	Last bool
}

// A FileResult says what one file of the log holds.
type FileResult struct {
	Name  string
	Lines int
	// Records counts its chained records; FirstSeq and LastSeq are the
	// seq of its first and last, 0 when it has none.
	Records           int
	FirstSeq, LastSeq uint64
	// Starts says how its first record stands in the chain: "the start
	// of the chain", "after NAME" (linked to the file before it), or, for
	// the first file given, that it continues a chain from files not
	// given.
	Starts string
}

// A Result is what a Verifier found.
type Result struct {
	Files []FileResult
	// Decisions, NotGiven and Checkpoints count the records of each kind;
	// Signed counts the checkpoints whose signature verified with the
	// trusted keys.
	Decisions, NotGiven, Checkpoints, Signed int
	// Unchained counts the lines before the chain began: records an
	// earlier flex-auth wrote without seq and prev. They are not covered.
	Unchained int
	// Torn are the lines that are not records, in order (at most
	// maxTorn; TornCount counts them all).
	Torn      []TornLine
	TornCount int
	// Head is where the chain stands after the last whole line.
	Head Head
	// LastSigned is the last checkpoint that verified, and Uncovered
	// counts the records after it, which no signature covers (all of
	// them when none verified). Both are meaningful with Keys only.
	LastSigned *Position
	Uncovered  int
	// HeadsFound reports, for each of Options.Heads, whether the chain
	// passed through it.
	HeadsFound []bool
	// Problem is the first line found tampered with; nil when the log is
	// intact.
	Problem *Problem
	// Keys reports whether checkpoints were verified against trusted
	// keys.
	Keys bool
}

// Intact reports whether the log is intact: no problem was found, every
// head given was found, and with keys every checkpoint verified and at
// least one is there (keys were given to prove the log was not rewritten:
// a log without a signature cannot).
func (r *Result) Intact() bool {
	if r.Problem != nil || r.Keys && r.Signed == 0 && r.Decisions+r.NotGiven > 0 {
		return false
	}
	for _, found := range r.HeadsFound {
		if !found {
			return false
		}
	}
	return true
}

// maxTorn bounds the torn lines a Result lists.
const maxTorn = 100

// historyLen is how many lines back a Verifier looks to explain a broken
// link (which lines were inserted).
const historyLen = 64

// A Verifier checks that one or more decision log files, given in the
// order they were written, form an intact chain: every record links to
// the line before it, seq counts up by one, checkpoints sign their place
// in the chain (and, with trusted keys, verify), and nothing else is in
// the files but the fragments of writes cut short. It stops at the first
// line that breaks the chain.
type Verifier struct {
	opt   Options
	res   Result
	heads map[Head][]int

	started bool // a whole line has been read
	chain   bool // a chained record has been read
	head    Head
	history [historyLen]seen // the last lines, by line count
	count   int              // whole lines read

	// suspect is a record whose prev did not match the line before it;
	// the next line tells which of the two was modified.
	suspect *suspect

	file   *FileResult
	line   int
	parser Parser
}

// seen is a whole line read.
type seen struct {
	pos  Position
	head Head // after the line
}

type suspect struct {
	pos, before Position
	hash        Hash // of the suspect line
}

// NewVerifier returns a Verifier; Add gives it the files in order.
func NewVerifier(opt Options) *Verifier {
	v := &Verifier{opt: opt}
	if v.opt.Now.IsZero() {
		v.opt.Now = time.Now()
	}
	v.res.Keys = opt.Keys != nil
	v.res.HeadsFound = make([]bool, len(opt.Heads))
	if len(opt.Heads) > 0 {
		v.heads = make(map[Head][]int)
		for i, h := range opt.Heads {
			v.heads[h] = append(v.heads[h], i)
		}
	}
	return v
}

// lineCheck is what a worker makes of a line.
type lineCheck struct {
	kind    Kind
	chained bool
	whole   bool // ends in a newline
	seq     uint64
	prev    Hash
	hash    Hash
	err     error
}

// errFound stops reading at the first problem.
var errFound = errors.New("problem found")

// Add reads the next file of the log, named name in the result. It
// returns an error only when r cannot be read; a log that is not intact
// is a Result with a Problem. Once a problem is found, further files are
// not read.
func (v *Verifier) Add(name string, r io.Reader) error {
	if v.res.Problem != nil {
		return nil
	}
	v.res.Files = append(v.res.Files, FileResult{Name: name})
	v.file = &v.res.Files[len(v.res.Files)-1]
	v.line = 0
	err := ProcessLines(r, v.opt.Workers, func() func([]byte, *lineCheck) {
		var p Parser
		var rec Record
		return func(line []byte, c *lineCheck) {
			*c = lineCheck{}
			c.whole = len(line) > 0 && line[len(line)-1] == '\n'
			if !c.whole {
				return
			}
			c.hash = HashOf(line)
			c.err = p.Parse(line, &rec)
			c.kind, c.chained, c.seq, c.prev = rec.Kind, rec.Chained, rec.Seq, rec.Prev
		}
	}, v.consume)
	var tooLong *LineTooLongError
	switch {
	case errors.Is(err, errFound):
		return nil
	case errors.As(err, &tooLong):
		v.fail(Position{name, tooLong.Line}, tooLong.Error())
		return nil
	case err != nil:
		return fmt.Errorf("read %s: %w", name, err)
	}
	return nil
}

// fail records the first problem.
func (v *Verifier) fail(at Position, why string) error {
	if v.res.Problem == nil {
		v.res.Problem = &Problem{Position: at, Why: why}
	}
	return errFound
}

// consume checks one line against the chain so far.
func (v *Verifier) consume(line []byte, c *lineCheck) error {
	v.line++
	v.file.Lines++
	pos := Position{v.file.Name, v.line}
	if !c.whole {
		v.torn(TornLine{Position: pos, Last: true})
		return nil
	}
	if s := v.suspect; s != nil {
		// The record before this line did not link to the line before
		// it. If this line links to it, it is as written, so the line
		// before it was changed; if not, it was.
		if c.chained && c.prev == s.hash {
			return v.fail(s.before, "modified or inserted (or a torn line after it removed): its hash is not the prev that "+s.pos.String()+" names")
		}
		return v.fail(s.pos, "modified or inserted: its prev is not the hash of "+s.before.String()+", the line before it")
	}
	switch {
	case c.err != nil:
		return v.fail(pos, "not a record: "+c.err.Error())
	case c.kind == Torn && !c.chained:
		if v.chain {
			return v.fail(pos, "a torn line without the hash of the line before it, after the chain began: inserted, or written by a flex-auth that does not chain")
		}
		v.torn(TornLine{Position: pos})
	case c.kind == Torn:
		if v.started && c.prev != v.head.Hash {
			v.suspect = &suspect{pos: pos, before: v.last().pos, hash: c.hash}
		}
		v.torn(TornLine{Position: pos})
	case !c.chained:
		if v.chain {
			return v.fail(pos, "a "+c.kind.String()+" without seq and prev after the chain began: inserted, or written by a flex-auth that does not chain")
		}
		if c.kind == Checkpoint {
			return v.fail(pos, "a checkpoint without seq and prev")
		}
		v.res.Unchained++
	default:
		if err := v.link(pos, c); err != nil {
			return err
		}
		if err := v.record(pos, line, c); err != nil {
			return err
		}
	}
	v.advance(pos, c)
	return nil
}

// link checks that a record follows the chain so far.
func (v *Verifier) link(pos Position, c *lineCheck) error {
	f := v.file
	if f.Records == 0 {
		f.FirstSeq = c.seq
		switch {
		case c.seq == 1 && c.prev.IsZero():
			f.Starts = "the start of the chain"
		case len(v.res.Files) > 1 && v.started:
			f.Starts = "after " + v.res.Files[len(v.res.Files)-2].Name
		case !v.started:
			f.Starts = "seq " + strconv.FormatUint(c.seq, 10) + ", continuing a chain from files not given (its link to them is not checked)"
		default:
			f.Starts = "after the lines before the chain began"
		}
	}
	f.Records++
	f.LastSeq = c.seq
	if !v.started {
		return nil // the first line given: nothing to link to
	}
	want := v.head.Seq + 1
	hint := ""
	if v.line == 1 {
		hint = " (are the files given in the order they were written?)"
	}
	switch {
	case c.hash == v.head.Hash:
		return v.fail(pos, "the same line as the one before it: repeated")
	case c.seq == 1 && c.prev.IsZero() && v.head.Seq > 0:
		return v.fail(pos, fmt.Sprintf("a new chain starts here after seq %d: the records after seq %d were removed, or the log was pieced together; a server whose log is standard output or a pipe starts a new chain each time it starts: verify each run on its own%s", v.head.Seq, v.head.Seq, hint))
	case c.seq > want:
		return v.fail(pos, fmt.Sprintf("seq %d, want %d: %s missing before this line (deleted, or moved)%s", c.seq, want, records(want, c.seq-1), hint))
	case c.seq < want:
		if at, ok := v.find(c.hash); ok {
			return v.fail(pos, "the same line as "+at.pos.String()+": repeated")
		}
		if at, ok := v.find(c.prev); ok && at.head.Seq+1 == c.seq && at.pos != v.last().pos {
			first := v.after(at)
			return v.fail(first, fmt.Sprintf("inserted: %s links to %s, so the lines from here to the line before it were not written there", pos, at.pos))
		}
		return v.fail(pos, fmt.Sprintf("seq %d after seq %d: a record repeated, inserted or out of order%s", c.seq, v.head.Seq, hint))
	case c.prev != v.head.Hash:
		v.suspect = &suspect{pos: pos, before: v.last().pos, hash: c.hash}
	}
	return nil
}

// records names the seq numbers from a to b.
func records(a, b uint64) string {
	if a == b {
		return "record " + strconv.FormatUint(a, 10) + " is"
	}
	return fmt.Sprintf("records %d to %d (%d) are", a, b, b-a+1)
}

// record counts a record and checks a checkpoint.
func (v *Verifier) record(pos Position, line []byte, c *lineCheck) error {
	switch c.kind {
	case Decision:
		v.res.Decisions++
	case NotGiven:
		v.res.NotGiven++
	case Checkpoint:
		v.res.Checkpoints++
		return v.checkpoint(pos, line, c)
	}
	if v.opt.Keys != nil {
		v.res.Uncovered++
	}
	return nil
}

// checkpoint checks that the checkpoint in line signs the chain as it
// stands before it (as its own seq and prev say; link checks that they
// are right), and with keys that its signature verifies.
func (v *Verifier) checkpoint(pos Position, line []byte, c *lineCheck) error {
	var r Record
	if err := v.parser.Parse(line, &r); err != nil {
		return v.fail(pos, "not a record: "+err.Error())
	}
	text, stamp, sig := String(r.CheckpointText), String(r.Time), String(r.Signature)
	t, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		return v.fail(pos, "checkpoint: time "+string(r.Time)+": not an RFC 3339 time")
	}
	before := Head{Seq: c.seq - 1, Hash: c.prev}
	if want := string(CheckpointMessage(before, t)); text != want {
		return v.fail(pos, fmt.Sprintf("checkpoint signs %q, but the chain before it stands at %s: want %q", text, before, want))
	}
	if v.opt.Keys == nil {
		return nil
	}
	if _, err := v.opt.Keys.Verify(Namespace, []byte(text), []byte(sig), v.opt.Now); err != nil {
		return v.fail(pos, "checkpoint signature: "+err.Error())
	}
	v.res.Signed++
	v.res.LastSigned = &pos
	v.res.Uncovered = 0
	return nil
}

// advance moves the chain past a whole line.
func (v *Verifier) advance(pos Position, c *lineCheck) {
	if c.chained && c.kind != Torn {
		v.head.Seq = c.seq
		v.chain = true
	}
	v.head.Hash = c.hash
	v.started = true
	v.count++
	v.history[v.count%historyLen] = seen{pos: pos, head: v.head}
	if v.heads != nil {
		for _, i := range v.heads[v.head] {
			v.res.HeadsFound[i] = true
		}
	}
}

// last is the last whole line read.
func (v *Verifier) last() seen { return v.history[v.count%historyLen] }

// find returns the recent line whose hash is h.
func (v *Verifier) find(h Hash) (seen, bool) {
	for i := range min(v.count, historyLen) {
		s := v.history[(v.count-i)%historyLen]
		if s.head.Hash == h {
			return s, true
		}
	}
	return seen{}, false
}

// after returns the position of the line read after at, among the recent
// lines.
func (v *Verifier) after(at seen) Position {
	for i := range min(v.count, historyLen) - 1 {
		if v.history[(v.count-i-1)%historyLen].pos == at.pos {
			return v.history[(v.count-i)%historyLen].pos
		}
	}
	return at.pos
}

func (v *Verifier) torn(t TornLine) {
	v.res.TornCount++
	if len(v.res.Torn) < maxTorn {
		v.res.Torn = append(v.res.Torn, t)
	}
}

// Result returns what the Verifier found in the files added so far.
func (v *Verifier) Result() *Result {
	res := v.res
	if s := v.suspect; s != nil && res.Problem == nil {
		res.Problem = &Problem{Position: s.pos, Why: "its prev is not the hash of " + s.before.String() + ", the line before it: one of the two was modified"}
	}
	res.Head = v.head
	return &res
}
