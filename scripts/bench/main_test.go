package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{nil, ""},
		{[]string{"-conns", "8", "-rounds", "3", "-out", "x.md,y.json"}, ""},
		{[]string{"-scenarios", "abd"}, `unknown scenario 'd'`},
		{[]string{"-scenarios", "ax"}, "scenario x needs -xbin"},
		{[]string{"-scenarios", "by"}, "scenario y needs -xbin"},
		{[]string{"-scenarios", "bcy", "-xbin", "/tmp/flex-auth-before"}, ""},
		{[]string{"-out", "x.txt"}, "want a .json or .md file"},
		{[]string{"-conns", "0"}, "at least 1"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-convergence", "-convergence-replicas", "3", "-convergence-poll", "1s", "-convergence-idle", "0"}, ""},
		{[]string{"-convergence", "-convergence-replicas", "0"}, "-convergence-replicas must be at least 1"},
		{[]string{"-convergence", "-convergence-poll", "0s"}, "-convergence-poll positive"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, _, err := parseFlags(tt.args, io.Discard)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got error %v, want %q", err, tt.wantErr)
			}
		})
	}
}
