package decisionlog

import (
	"bytes"
	"fmt"
	"io"
)

// A Tail is the end of an existing log: what a server appending to it
// needs to continue its chain.
type Tail struct {
	// Head is where the chain stands after the last whole line: the
	// hash of that line, and the seq of the last record at or before it
	// (0 when there is none near the end: a log written before the
	// chain, whose next record starts the chain at seq 1 and links to
	// its last line).
	Head Head
	// Fragment holds the bytes after the last newline: a write cut short
	// by a crash. The writer ends it (AppendTornEnd) before anything
	// else.
	Fragment []byte
}

// tailWindow is how much of a log's end ReadTail reads at first, and
// tailScan how far back it looks for the last record's seq past lines
// that are not records (torn lines, lines written before the chain).
const (
	tailWindow = 256 << 10
	tailScan   = 4 << 20
)

// ReadTail reads the end of a log of size bytes: the hash of its last
// whole line and the seq of its last record, and the fragment after its
// last newline. It reads the last few hundred kilobytes, more only when
// its last lines are that long.
func ReadTail(r io.ReaderAt, size int64) (Tail, error) {
	var t Tail
	if size == 0 {
		return t, nil
	}
	window := int64(tailWindow)
	for {
		window = min(window, size)
		buf := make([]byte, window)
		if _, err := r.ReadAt(buf, size-window); err != nil && err != io.EOF {
			return t, fmt.Errorf("read the last %d bytes: %w", window, err)
		}
		atStart := window == size
		nl := bytes.LastIndexByte(buf, '\n')
		if nl < 0 && !atStart {
			if window >= MaxLine+tailScan {
				return t, fmt.Errorf("no newline in the last %d bytes: not a decision log", window)
			}
			window *= 4
			continue
		}
		t.Fragment = bytes.Clone(buf[nl+1:])
		if nl < 0 {
			return t, nil // a fragment and nothing before it
		}
		lines := buf[:nl+1]
		// The last whole line must be in the window: its start is after
		// an earlier newline, or at the start of the file.
		lastStart := bytes.LastIndexByte(lines[:nl], '\n') + 1
		if lastStart == 0 && !atStart {
			window *= 4
			continue
		}
		seq, ok := lastSeq(lines, atStart)
		if !ok && !atStart && window < tailScan {
			window *= 4
			continue
		}
		t.Head = Head{Seq: seq, Hash: HashOf(lines[lastStart:])}
		return t, nil
	}
}

// lastSeq returns the seq of the last record in lines, which end in a
// newline, looking back no further than tailScan bytes: ok is false when
// it found none before it reached the start of lines, which is not the
// start of the log unless atStart.
func lastSeq(lines []byte, atStart bool) (seq uint64, ok bool) {
	var p Parser
	var r Record
	end := len(lines)
	for end > 0 {
		if len(lines)-end >= tailScan {
			return 0, true
		}
		start := bytes.LastIndexByte(lines[:end-1], '\n') + 1
		if start == 0 && !atStart {
			return 0, false
		}
		if p.Parse(lines[start:end], &r) == nil && r.Chained && r.Kind != Torn {
			return r.Seq, true
		}
		end = start
	}
	return 0, true
}
