package suggest

import "testing"

var actorKeys = []string{"type", "principal", "ttl_hours", "max_ttl_hours", "subjects", "description", "disabled"}

func TestClosest(t *testing.T) {
	tests := []struct{ key, want string }{
		{"ttl_hour", "ttl_hours"},
		{"TTL_Hours", "ttl_hours"},
		{"max-ttl-hours", "max_ttl_hours"},
		{"max_ttl", "max_ttl_hours"},
		{"principle", "principal"},
		{"subject", "subjects"},
		{"tpye", "type"},
		{"owner", ""},
		{"name", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := Closest(tt.key, actorKeys); got != tt.want {
			t.Errorf("Closest(%q): got %q, want %q", tt.key, got, tt.want)
		}
	}
}
