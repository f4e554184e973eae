package main

import (
	"runtime/debug"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	stamped := &debug.BuildInfo{Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abc"}}}
	tests := []struct {
		name                 string
		linkVersion, linkSHA string
		info                 *debug.BuildInfo
		wantVersion, wantSHA string
	}{
		{"set at link time", "v2.0.0", "fedcba9", stamped, "v2.0.0", "fedcba9"},
		{"go install @version", "dev", "", stamped, "v1.2.3", "0123abc"},
		{"go build in a checkout", "dev", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev", "unknown"},
		{"no build info", "dev", "", nil, "dev", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			oldVersion, oldCommit := version, commit
			defer func() { version, commit = oldVersion, oldCommit }()
			version, commit = tt.linkVersion, tt.linkSHA
			if got := buildVersion(tt.info); got != tt.wantVersion {
				t.Errorf("version: got %q, want %q", got, tt.wantVersion)
			}
			if got := buildCommit(tt.info); got != tt.wantSHA {
				t.Errorf("commit: got %q, want %q", got, tt.wantSHA)
			}
		})
	}
}
