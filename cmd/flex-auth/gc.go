package main

import (
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
)

// maxGCPercent bounds the GC percent tuneGC sets.
const maxGCPercent = 5000

// tuneGC sets the garbage collector's percent so that the heap goal is
// minHeap, or twice the live heap when that is more (Go's default pacing,
// GOGC=100). The decision path allocates little per request, but at tens
// of thousands of requests a second it adds up: with the few megabytes of
// live heap of a small registry, the default pacing collects every few
// megabytes, some fifteen times a second under load, for 5-7% of the
// server's CPU. A minimum heap keeps collections rare there, and changes
// nothing for a large registry, whose live heap is past half of it, so
// its resident size stays what the default gives. It runs after a
// collection, so the live heap it reads is current.
func tuneGC(minHeap int64) {
	if minHeap <= 0 {
		return
	}
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return
	}
	live := max(int64(s[0].Value.Uint64()), 1<<20)
	debug.SetGCPercent(int(min(max(100, (minHeap-live)*100/live), maxGCPercent)))
}

// gcMinHeap is the heap serve lets grow before a collection, unless the
// operator tunes the Go GC (GOGC, GOMEMLIMIT): with a small registry the
// default pacing collects every few megabytes, about fifteen times a
// second under load.
const gcMinHeap = 64 << 20

// tuneGCAfterLoad is serve's AfterLoad when the operator has not tuned the
// GC: a collection, so that the live heap is the loaded pair's, then
// tuneGC. The GC is the process's, so main tunes it, not package serve.
func tuneGCAfterLoad() {
	runtime.GC()
	tuneGC(gcMinHeap)
}
