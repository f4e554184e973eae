package bench

import (
	"bufio"
	"bytes"
	"math"
	"sort"
	"strconv"
	"strings"
)

// checkHistogram is flex-auth's flexauth_check_duration_seconds histogram:
// the time from the handler's start to its response, decision log write
// included. Set beside the generator's end-to-end latency, it tells how
// much of a tail is the handler and how much is outside it (the kernel,
// the schedulers, the generator itself).
type checkHistogram struct {
	bounds []float64 // upper bounds in seconds, ascending, +Inf last
	counts []float64 // cumulative
}

const checkMetric = "flexauth_check_duration_seconds_bucket"

// parseCheckHistogram reads the histogram from a Prometheus text
// exposition; ok is false when it is not there.
func parseCheckHistogram(text []byte) (h checkHistogram, ok bool) {
	type bucket struct{ le, n float64 }
	var bs []bucket
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		rest, found := strings.CutPrefix(line, checkMetric+`{le="`)
		if !found {
			continue
		}
		le, rest, found := strings.Cut(rest, `"}`)
		if !found {
			continue
		}
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		bs = append(bs, bucket{bound, n})
	}
	if len(bs) == 0 {
		return h, false
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, b := range bs {
		h.bounds = append(h.bounds, b.le)
		h.counts = append(h.counts, b.n)
	}
	return h, true
}

// quantile returns the upper bound, in microseconds, of the bucket that
// holds quantile q, or +Inf when it is the last bucket; 0 without samples.
func (h checkHistogram) quantile(q float64) float64 {
	if len(h.counts) == 0 || h.counts[len(h.counts)-1] == 0 {
		return 0
	}
	rank := math.Ceil(q * h.counts[len(h.counts)-1])
	for i, c := range h.counts {
		if c >= rank {
			return h.bounds[i] * 1e6
		}
	}
	return math.Inf(1)
}

// flushCounts are flex-auth's counters of decision log flushes (with
// --log-sync): how many, and how many decisions they covered. Their
// quotient is the group commit's batch: how many decisions share one
// fdatasync.
type flushCounts struct {
	flushes, decisions float64
}

// parseFlushCounts reads the flush counters from a Prometheus text
// exposition; zero when they are not there (no --log-sync, or a flex-auth
// from before they were counted).
func parseFlushCounts(text []byte) flushCounts {
	var c flushCounts
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		name, value, found := strings.Cut(sc.Text(), " ")
		if !found {
			continue
		}
		n, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "flexauth_decision_log_flushes_total":
			c.flushes = n
		case "flexauth_decision_log_flushed_decisions_total":
			c.decisions = n
		}
	}
	return c
}
