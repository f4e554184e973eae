package bench

import (
	"math"
	"math/bits"
	"time"
)

// histogram records latencies in log-linear buckets, the way HDR
// histograms do: exact below 256 ns, then 128 buckets per power of two, so
// a reported percentile is within 0.8% of the true sample. Recording is a
// few instructions and never allocates, so every request of a run is
// recorded without the load generator slowing down or growing its heap.
type histogram struct {
	counts [histBuckets]int64
	n      int64
	min    int64
	max    int64
}

const (
	// histSubBits is log2 of the exact range; above it each power of two
	// has 1<<(histSubBits-1) buckets.
	histSubBits = 8
	histSub     = 1 << histSubBits
	histHalf    = histSub / 2
	// histBuckets covers values up to 2^62 ns (146 years).
	histBuckets = histSub + (62-histSubBits)*histHalf
)

// bucketOf returns the bucket of a non-negative value.
func bucketOf(v int64) int {
	k := bits.Len64(uint64(v))
	if k <= histSubBits {
		return int(v)
	}
	shift := k - histSubBits
	top := int(v >> shift) // in [histHalf, histSub)
	return histSub + (shift-1)*histHalf + top - histHalf
}

// bucketHigh returns the largest value that falls in bucket b.
func bucketHigh(b int) int64 {
	if b < histSub {
		return int64(b)
	}
	shift := (b-histSub)/histHalf + 1
	top := int64((b-histSub)%histHalf + histHalf)
	return (top+1)<<shift - 1
}

// record adds one latency. Negative values (a clock step) count as zero.
func (h *histogram) record(d time.Duration) {
	v := max(int64(d), 0)
	if v >= 1<<62 {
		v = 1<<62 - 1
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
}

// merge adds o's samples to h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
}

// count returns the number of recorded samples.
func (h *histogram) count() int64 { return h.n }

// percentile returns the smallest recorded value v such that at least a
// fraction q of the samples are <= v, rounded up to its bucket's upper
// bound (never above the true maximum), or 0 when nothing was recorded.
func (h *histogram) percentile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	var seen int64
	for b, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(max(bucketHigh(b), h.min), h.max))
		}
	}
	return time.Duration(h.max)
}
