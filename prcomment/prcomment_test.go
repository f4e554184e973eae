package prcomment

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/coulomb/flex-auth/prcomment/prcommenttest"
)

const key = "examples/ops-warden/production_registry_snapshot.json"

func fake(t *testing.T) (*prcommenttest.Server, Config) {
	t.Helper()
	srv := prcommenttest.NewServer("coulomb", "flex-auth", 7, "t0ken")
	t.Cleanup(srv.Close)
	return srv, Config{Token: "t0ken", Owner: "coulomb", Repo: "flex-auth", Number: 7, APIURL: srv.URL}
}

func upsert(t *testing.T, cfg Config, body string, create bool) Result {
	t.Helper()
	res, err := Upsert(context.Background(), cfg, key, body, create)
	if err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	return res
}

// TestStickyComment runs CI three times on one pull request: drift, more
// drift, then in sync. There is only ever one comment, edited in place.
func TestStickyComment(t *testing.T) {
	srv, cfg := fake(t)
	other := srv.AddComment("LGTM")

	res := upsert(t, cfg, "drift: 1 changed", true)
	if res.Action != Created {
		t.Fatalf("first run: got %s, want %s", res.Action, Created)
	}
	cs := srv.Comments()
	if len(cs) != 2 || cs[1].ID != res.ID || cs[1].Body != Marker(key)+"\ndrift: 1 changed" {
		t.Fatalf("after the first run: got comments %+v", cs)
	}

	res2 := upsert(t, cfg, "drift: 2 changed", true)
	if res2.Action != Updated || res2.ID != res.ID {
		t.Errorf("second run: got %s of %d, want %s of %d", res2.Action, res2.ID, Updated, res.ID)
	}
	res3 := upsert(t, cfg, "in sync", false)
	if res3.Action != Updated || res3.ID != res.ID {
		t.Errorf("in-sync run: got %s of %d, want %s of %d", res3.Action, res3.ID, Updated, res.ID)
	}
	res4 := upsert(t, cfg, "in sync", false)
	if res4.Action != Unchanged {
		t.Errorf("same body again: got %s, want %s", res4.Action, Unchanged)
	}

	cs = srv.Comments()
	if len(cs) != 2 {
		t.Fatalf("got %d comments, want 2 (one of somebody else's, one sticky)", len(cs))
	}
	if cs[0].ID != other || cs[0].Body != "LGTM" {
		t.Errorf("somebody else's comment changed: %+v", cs[0])
	}
	if want := Marker(key) + "\nin sync"; cs[1].Body != want {
		t.Errorf("sticky comment: got %q, want %q", cs[1].Body, want)
	}
	if got := srv.Count(http.MethodPost); got != 1 {
		t.Errorf("got %d POSTs, want 1", got)
	}
	if got := srv.Count(http.MethodPatch); got != 2 {
		t.Errorf("got %d PATCHes, want 2", got)
	}
}

func TestInSyncWithoutCommentCreatesNothing(t *testing.T) {
	srv, cfg := fake(t)
	res := upsert(t, cfg, "in sync", false)
	if res.Action != Skipped {
		t.Errorf("got %s, want %s", res.Action, Skipped)
	}
	if n := len(srv.Comments()); n != 0 {
		t.Errorf("got %d comments, want none", n)
	}
}

// TestPagination finds the comment on the second page, and a comment for
// another file, or one that only quotes the marker, is not it.
func TestPagination(t *testing.T) {
	srv, cfg := fake(t)
	srv.SetPageSize(2)
	srv.AddComment("first")
	srv.AddComment(Marker("other.json") + "\nabout another file")
	srv.AddComment("> " + Marker(key) + "\n> quoted by a reviewer")
	id := srv.AddComment(Marker(key) + "\nold report")
	srv.AddComment("last")

	res := upsert(t, cfg, "new report", true)
	if res.Action != Updated || res.ID != id {
		t.Fatalf("got %s of %d, want %s of %d", res.Action, res.ID, Updated, id)
	}
	pages := map[string]bool{}
	for _, r := range srv.Requests() {
		if r.Method == http.MethodGet {
			pages[r.Query] = true
		}
	}
	if len(pages) != 2 {
		t.Errorf("got list requests %v, want pages 1 and 2", pages)
	}
	if srv.Count(http.MethodPost) != 0 {
		t.Error("created a second comment")
	}
}

func TestAPIError(t *testing.T) {
	tests := []struct {
		name, method string
		existing     bool
		want         string
	}{
		{"list", http.MethodGet, false, "list comments of coulomb/flex-auth#7"},
		{"create", http.MethodPost, false, "create comment on coulomb/flex-auth#7"},
		{"edit", http.MethodPatch, true, "edit comment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, cfg := fake(t)
			if tt.existing {
				srv.AddComment(Marker(key) + "\nold")
			}
			srv.Fail(tt.method, http.StatusForbidden, "Resource not accessible by integration")
			_, err := Upsert(context.Background(), cfg, key, "report", true)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "403 Resource not accessible by integration") {
				t.Errorf("got %v, want an error with %q and GitHub's message", err, tt.want)
			}
		})
	}
	t.Run("bad token", func(t *testing.T) {
		_, cfg := fake(t)
		cfg.Token = "wrong"
		if _, err := Upsert(context.Background(), cfg, key, "report", true); err == nil || !strings.Contains(err.Error(), "Bad credentials") {
			t.Errorf("got %v, want Bad credentials", err)
		}
	})
}

func TestLongBodyIsCut(t *testing.T) {
	srv, cfg := fake(t)
	line := strings.Repeat("é", 99) + "\n" // 100 characters, 199 bytes
	body := strings.Repeat(line, 1000)     // 100,000 characters
	res := upsert(t, cfg, body, true)
	if res.Action != Created {
		t.Fatalf("got %s, want %s", res.Action, Created)
	}
	got := srv.Comments()[0].Body
	if n := utf8.RuneCountInString(got); n > MaxBody {
		t.Errorf("got a body of %d characters, want at most %d", n, MaxBody)
	}
	if !strings.HasPrefix(got, Marker(key)+"\n") || !strings.HasSuffix(got, cutNote) {
		t.Error("the cut body lost its marker or its note")
	}
	if !strings.HasSuffix(strings.TrimSuffix(got, cutNote), strings.Repeat("é", 99)) {
		t.Error("the body was not cut at a line end")
	}
}

func TestMarker(t *testing.T) {
	tests := []struct{ key, want string }{
		{"a.json", "<!-- flex-auth-drift: a.json -->"},
		{"x--y.json", "<!-- flex-auth-drift: x-%2Dy.json -->"},
		{"a-->b", "<!-- flex-auth-drift: a-%2D%3Eb -->"},
		{"50%", "<!-- flex-auth-drift: 50%25 -->"},
	}
	for _, tt := range tests {
		if got := Marker(tt.key); got != tt.want {
			t.Errorf("Marker(%q) = %q, want %q", tt.key, got, tt.want)
		}
	}
	if Room(key) != MaxBody-len(Marker(key))-1 {
		t.Errorf("Room(%q) = %d", key, Room(key))
	}
}

func TestEventNumber(t *testing.T) {
	tests := []struct {
		name, event string
		want        int
		wantErr     string
	}{
		{"pull_request", `{"action": "opened", "number": 5, "pull_request": {"number": 5}}`, 5, ""},
		{"issue_comment on a pull request", `{"issue": {"number": 9, "pull_request": {"url": "x"}}}`, 9, ""},
		{"issue_comment on an issue", `{"issue": {"number": 9}}`, 0, "not a pull request"},
		{"push", `{"ref": "refs/heads/main"}`, 0, "no pull_request.number"},
		{"not JSON", `{`, 0, "read event"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EventNumber([]byte(tt.event))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got %d, %v, want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %d, %v, want %d", got, err, tt.want)
			}
		})
	}
}

func TestSplitRepository(t *testing.T) {
	if o, r, err := SplitRepository("coulomb/flex-auth"); err != nil || o != "coulomb" || r != "flex-auth" {
		t.Errorf("got %q %q %v", o, r, err)
	}
	for _, bad := range []string{"", "coulomb", "/x", "x/", "a/b/c"} {
		if _, _, err := SplitRepository(bad); err == nil {
			t.Errorf("SplitRepository(%q): got no error", bad)
		}
	}
}

// TestEnterpriseBaseURL: GITHUB_API_URL of GitHub Enterprise Server ends
// in /api/v3, and requests go below it.
func TestEnterpriseBaseURL(t *testing.T) {
	srv, cfg := fake(t)
	cfg.APIURL = srv.URL + "/api/v3"
	_, err := Upsert(context.Background(), cfg, key, "report", true)
	// The fake serves at the root, so the request must have gone to
	// /api/v3/repos/...: a 404 from the fake proves the prefix was kept.
	if err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("got %v, want a 404 from the fake", err)
	}
	if got := srv.Requests()[0].Path; got != "/api/v3/repos/coulomb/flex-auth/issues/7/comments" {
		t.Errorf("got request path %q", got)
	}
}
