package decisionlog

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ParseHead parses a head as /healthz gives it and log verify takes it:
// the seq, a colon, and the hash ("1041:sha256:...").
func ParseHead(s string) (Head, error) {
	seq, hash, ok := strings.Cut(s, ":")
	if !ok {
		return Head{}, errors.New(`want SEQ:sha256:HASH, as /healthz gives decision_log.seq and .head`)
	}
	n, err := strconv.ParseUint(seq, 10, 64)
	if err != nil {
		return Head{}, fmt.Errorf("seq %q: want a whole number", seq)
	}
	h, err := ParseHash(hash)
	if err != nil {
		return Head{}, fmt.Errorf("hash %q: %v", hash, err)
	}
	return Head{Seq: n, Hash: h}, nil
}

// Write prints the result for people: a line per file, the torn lines,
// the checkpoints, the head, and a last line that says whether the log is
// intact or where it was first found tampered with.
func (r *Result) Write(w io.Writer, heads []Head) error {
	var b strings.Builder
	for _, f := range r.Files {
		fmt.Fprintf(&b, "%s: %d lines", f.Name, f.Lines)
		switch {
		case f.Records > 0:
			fmt.Fprintf(&b, ", seq %d to %d (%s)\n", f.FirstSeq, f.LastSeq, f.Starts)
		default:
			b.WriteString(", no record\n")
		}
	}
	if r.Unchained > 0 {
		fmt.Fprintf(&b, "before the chain: %d records written by a flex-auth that did not chain them; nothing proves them\n", r.Unchained)
	}
	for _, t := range r.Torn {
		if t.Last {
			fmt.Fprintf(&b, "torn: %s: the last line has no newline: a write in progress, or cut short by a crash; not a record\n", t.Position)
		} else {
			fmt.Fprintf(&b, "torn: %s: a fragment of a write cut short, ended by the server; not a record\n", t.Position)
		}
	}
	if more := r.TornCount - len(r.Torn); more > 0 {
		fmt.Fprintf(&b, "torn: %d more\n", more)
	}
	switch {
	case !r.Keys:
		fmt.Fprintf(&b, "checkpoints: %d, their signatures not verified (give --key)\n", r.Checkpoints)
	case r.Signed == 0:
		fmt.Fprintf(&b, "checkpoints: none, though keys were given: nothing proves that the %d records were not rewritten\n", r.Uncovered)
	default:
		fmt.Fprintf(&b, "checkpoints: %d, all signatures verified, the last at %s; %d records after it not covered by a signature\n", r.Signed, r.LastSigned, r.Uncovered)
	}
	for i, h := range heads {
		found := "found"
		if !r.HeadsFound[i] {
			found = "NOT FOUND: the log no longer holds the chain as it stood then"
		}
		fmt.Fprintf(&b, "recorded head %s: %s\n", h, found)
	}
	if r.Problem != nil {
		fmt.Fprintf(&b, "%s: %s\n", r.Problem.Position, r.Problem.Why)
		fmt.Fprintf(&b, "TAMPERED: the first bad line is %s\n", r.Problem.Position)
	} else {
		fmt.Fprintf(&b, "head: %s\n", r.Head)
		verdict := "intact"
		if !r.Intact() {
			verdict = "NOT PROVEN: a recorded head is missing, or nothing is signed"
		}
		fmt.Fprintf(&b, "%s: %d decisions, %d not_given records, %d checkpoints, %d torn lines\n", verdict, r.Decisions, r.NotGiven, r.Checkpoints, r.TornCount)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
