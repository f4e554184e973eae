package serve

import (
	"testing"
	"unsafe"
)

func TestDecodeNumbers(t *testing.T) {
	tests := []struct {
		lit  string
		want any
	}{
		{"24", int64(24)},
		{"-0", int64(0)},
		{"0", int64(0)},
		{"-9223372036854775808", int64(-9223372036854775808)},
		{"9223372036854775807", int64(9223372036854775807)},
		{"9223372036854775808", float64(9223372036854775808)},
		{"-9223372036854775809", float64(-9223372036854775809)},
		{"24.0", float64(24)},
		{"2.4e1", float64(24)},
		{"24E0", float64(24)},
		{"1.5", 1.5},
		{"-1e-400", float64(0)},
	}
	for _, tt := range tests {
		t.Run(tt.lit, func(t *testing.T) {
			var req checkRequest
			if err := decodeRequest([]byte(`{"subject":"a","resource":"b","context":{"n":`+tt.lit+`}}`), &req, nil, nil); err != nil {
				t.Fatal(err)
			}
			if got := req.Context["n"]; got != tt.want {
				t.Errorf("got %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

func TestIntern(t *testing.T) {
	snap := altRegistry(t, "ops-warden/ssh-signing")
	a := &snap.Actors[0]
	tests := []struct {
		in   string
		want *string // the string it must share, nil when not interned
	}{
		{bridge, &a.Name},
		{"iam:" + bridge, &a.Subjects[1]},
		{"iam:agt-nobody", nil},
		{"agt-nobody", nil},
		{"iam:", nil},
		{"", nil},
		{"agt-task-bridge", nil}, // principals are not searched
		{"subject", nil},         // a constant, checked below
	}
	for _, tt := range tests {
		got, ok := intern(snap, []byte(tt.in))
		switch {
		case tt.in == "subject":
			if !ok || got != "subject" {
				t.Errorf("intern(subject): got %q %v, want the member name", got, ok)
			}
		case tt.want == nil && ok:
			t.Errorf("intern(%q): got %q, want not interned", tt.in, got)
		case tt.want != nil && (!ok || got != *tt.want || unsafe.StringData(got) != unsafe.StringData(*tt.want)):
			t.Errorf("intern(%q): got %q %v, want the snapshot's own string", tt.in, got, ok)
		}
	}
	if _, ok := intern(nil, []byte(bridge)); ok {
		t.Errorf("intern with no snapshot: got interned, want not")
	}
}
