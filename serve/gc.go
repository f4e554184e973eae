package serve

import (
	"runtime"
	"runtime/debug"
	rtmetrics "runtime/metrics"
)

// maxGCPercent bounds the GC percent tuneGC sets.
const maxGCPercent = 5000

// tuneGC sets the garbage collector's percent so that the heap may grow
// by about headroom bytes of garbage over the live heap between two
// collections, and never by less than the live heap (the default, 100%).
// The decision path allocates little, but at tens of thousands of requests
// a second it adds up; with the small live heap of a small registry, the
// default pacing collects every few megabytes, hundreds of times a second
// of load. A fixed headroom keeps collections rare there, and costs a large
// registry (whose live heap exceeds the headroom) nothing. It runs after a
// collection, so the live heap it reads is current.
func tuneGC(headroom int64) {
	if headroom <= 0 {
		return
	}
	s := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return
	}
	live := max(int64(s[0].Value.Uint64()), 1<<20)
	debug.SetGCPercent(int(min(max(100, headroom*100/live), maxGCPercent)))
}

// collect runs a garbage collection and retunes the GC for the live heap it
// leaves.
func collect(headroom int64, release bool) {
	if release {
		debug.FreeOSMemory()
	} else {
		runtime.GC()
	}
	tuneGC(headroom)
}
