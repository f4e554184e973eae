package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestTuneGC(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	tests := []struct {
		name             string
		minHeap          int64
		wantMin, wantMax int
	}{
		{"no minimum leaves the GC alone", 0, 100, 100},
		{"a minimum below twice the live heap keeps the default", 1, 100, 100},
		// A test binary's live heap is a few MB: 1 GiB asks for more than
		// the cap.
		{"a large minimum is capped", 1 << 30, maxGCPercent, maxGCPercent},
		{"64 MiB over a small heap", 64 << 20, 200, maxGCPercent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			runtime.GC()
			tuneGC(tt.minHeap)
			if got := debug.SetGCPercent(100); got < tt.wantMin || got > tt.wantMax {
				t.Errorf("GC percent: got %d, want %d..%d", got, tt.wantMin, tt.wantMax)
			}
		})
	}
}
