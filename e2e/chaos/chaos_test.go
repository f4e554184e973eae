package chaos

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coulomb/flex-auth/decisionlog"
)

func line(id, effect, reason string) string {
	return fmt.Sprintf(`{"time":"2026-06-23T10:11:12.000000007Z","decision_id":%q,"subject":"s","action":"ssh.sign","resource":"r","context":{},"effect":%q,"reason":%q,"policy":"ops-warden/ssh-signing","policy_digest":"sha256:%s","registry_digest":"sha256:%s"}`,
		id, effect, reason, strings.Repeat("a", 64), strings.Repeat("b", 64))
}

func received(id, effect, reason string) Received {
	return Received{ID: id, Effect: effect, Reason: reason, Policy: "ops-warden/ssh-signing",
		PolicyDigest: "sha256:" + strings.Repeat("a", 64), RegistryDigest: "sha256:" + strings.Repeat("b", 64)}
}

const (
	id1 = "decision:0000000000000001"
	id2 = "decision:0000000000000002"
	id3 = "decision:0000000000000003"
)

func TestReadLog(t *testing.T) {
	whole := line(id3, "allow", "signing_policy_matched")
	tests := []struct {
		name      string
		data      string
		decisions []string
		torn      int
	}{
		{"empty", "", nil, 0},
		{"lines", line(id1, "allow", "x") + "\n" + line(id2, "deny", "y") + "\n", []string{id1, id2}, 0},
		{"last line without its newline", line(id1, "allow", "x") + "\n" + whole, []string{id1}, 1},
		{"torn line ended by the server", line(id1, "allow", "x") + "\n" + whole[:50] + `"\ <- cut short: not a decision` + "\n" + line(id2, "deny", "y") + "\n", []string{id1, id2}, 1},
		{"whole object with the torn marker", whole + `"\ <- cut short: not a decision` + "\n", nil, 1},
		{"missing member", strings.Replace(whole, `"subject":"s",`, "", 1) + "\n", nil, 1},
		{"extra member", strings.Replace(whole, `"subject":"s",`, `"subject":"s","authorization":"x",`, 1) + "\n", nil, 1},
		{"bad id", strings.Replace(whole, id3, "decision:xyz", 1) + "\n", nil, 1},
		{"bad effect", strings.Replace(whole, `"allow"`, `"maybe"`, 1) + "\n", nil, 1},
		{"bad reason", strings.Replace(whole, `"signing_policy_matched"`, `"Signing policy"`, 1) + "\n", nil, 1},
		{"bad policy", strings.Replace(whole, `"ops-warden/ssh-signing"`, `""`, 1) + "\n", nil, 1},
		{"bad digest", strings.Replace(whole, `"sha256:a`, `"sha1:a`, 1) + "\n", nil, 1},
		{"bad time", strings.Replace(whole, `2026-06-23T10:11:12.000000007Z`, `yesterday`, 1) + "\n", nil, 1},
		{"context not an object", strings.Replace(whole, `"context":{}`, `"context":[]`, 1) + "\n", nil, 1},
		// Read strictly, as the server writes: a member given twice, a
		// member name in another case, invalid UTF-8 and data after the
		// object are not decisions.
		{"duplicate member", strings.Replace(whole, `"effect":"allow",`, `"effect":"deny","effect":"allow",`, 1) + "\n", nil, 1},
		{"member name in another case", strings.Replace(whole, `"effect":`, `"Effect":`, 1) + "\n", nil, 1},
		{"invalid UTF-8", strings.Replace(whole, `"subject":"s"`, "\"subject\":\"s\xff\"", 1) + "\n", nil, 1},
		{"data after the object", whole + " {}\n", nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := ReadLog("log", []byte(tt.data))
			if len(l.Decisions) != len(tt.decisions) {
				t.Errorf("decisions: got %d, want %d", len(l.Decisions), len(tt.decisions))
			}
			for _, id := range tt.decisions {
				if _, ok := l.Decisions[id]; !ok {
					t.Errorf("decision %s: missing", id)
				}
			}
			if len(l.Torn) != tt.torn {
				t.Errorf("torn lines: got %v, want %d", l.Torn, tt.torn)
			}
		})
	}
}

func TestVerify(t *testing.T) {
	log := line(id1, "allow", "a") + "\n" + line(id2, "deny", "d") + "\n" + line(id3, "allow", "a")[:90]
	tests := []struct {
		name     string
		received []Received
		ok       bool
		lost     int
		unlogged int
		tornHeld int
	}{
		{"all logged", []Received{received(id1, "allow", "a"), received(id2, "deny", "d")}, true, 0, 0, 0},
		{"an allow not logged", []Received{received("decision:00000000000000ff", "allow", "a")}, false, 1, 1, 0},
		{"a deny not logged", []Received{received("decision:00000000000000ff", "deny", "d")}, false, 1, 0, 0},
		{"logged with another effect", []Received{received(id2, "allow", "d")}, false, 1, 1, 0},
		{"logged from another registry", []Received{{ID: id1, Effect: "allow", Reason: "a", Policy: "ops-warden/ssh-signing",
			PolicyDigest: "sha256:" + strings.Repeat("a", 64), RegistryDigest: "sha256:" + strings.Repeat("c", 64)}}, false, 1, 1, 0},
		{"cut short", []Received{received(id3, "allow", "a")}, false, 1, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ReadLog("log", []byte(log)).Verify(tt.received)
			if v.OK() != tt.ok || len(v.Lost) != tt.lost || v.UnloggedAllows != tt.unlogged || len(v.TornWithReceived) != tt.tornHeld {
				t.Errorf("got %s (ok %v), want ok %v, lost %d, unlogged allows %d, torn holding %d", v, v.OK(), tt.ok, tt.lost, tt.unlogged, tt.tornHeld)
			}
		})
	}
	dup := ReadLog("log", []byte(line(id1, "allow", "a")+"\n"+line(id1, "allow", "a")+"\n"))
	if v := dup.Verify([]Received{received(id1, "allow", "a")}); v.OK() || len(v.Duplicates) != 1 {
		t.Errorf("a decision logged twice: got %s (ok %v), want a duplicate", v, v.OK())
	}
	if v := ReadLog("log", []byte(log)).Verify([]Received{received(id1, "allow", "a")}); !v.OK() || v.Extra != 1 {
		t.Errorf("got %s (ok %v), want ok with one decision no client received", v, v.OK())
	}

	// A not_given record names decisions written although their
	// requests were answered 503.
	notGiven := log[:len(log)-90] + `{"time":"2026-06-23T10:11:12.000000007Z","not_given":["` + id2 + `"],"why":"answered 503"}` + "\n"
	l := ReadLog("log", []byte(notGiven))
	if len(l.Torn) != 0 || !l.NotGiven[id2] {
		t.Errorf("not_given record: torn %v, not given %v; want it read as a record naming %s", l.Torn, l.NotGiven, id2)
	}
	if v := l.Verify([]Received{received(id1, "allow", "a")}); !v.OK() || v.Extra != 0 || v.Withdrawn != 1 {
		t.Errorf("got %s (ok %v), want ok with the one decision not received marked not given", v, v.OK())
	}
	if v := l.Verify([]Received{received(id1, "allow", "a"), received(id2, "deny", "d")}); v.OK() || len(v.GivenNotGiven) != 1 {
		t.Errorf("got %s (ok %v), want a received decision marked not given reported", v, v.OK())
	}
}

// TestWaitAnsweredLoadEnded checks that a wait for answers that can no
// longer come, because each worker has sent its PerWorker requests, ends
// at once and says so, rather than at its deadline.
func TestWaitAnsweredLoadEnded(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	l, err := StartLoad(LoadConfig{URL: srv.URL, Workers: 2, PerWorker: 3, Requests: Probes})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if l.WaitAnswered(ctx, "start", 100) || ctx.Err() != nil {
		t.Errorf("waiting for 100 answers of a load of 6: got %d answered, context %v; want false at once", l.Answered("start"), ctx.Err())
	}
	if !l.Ended() || l.Answered("start") != 6 {
		t.Errorf("ended %v after %d answers, want ended after 6", l.Ended(), l.Answered("start"))
	}
	if !l.WaitAnswered(ctx, "start", 6) {
		t.Errorf("waiting for the 6 answers there are: got false")
	}
}

// TestRun runs the chaos check for a few seconds against a freshly built
// flex-auth: nothing lost, no allow unlogged, no unexpected failure.
func TestRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs flex-auth; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "flex-auth")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/coulomb/flex-auth/cmd/flex-auth").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sum, err := Run(ctx, Config{Binary: bin, Dir: t.TempDir(), Duration: 2 * time.Second, Workers: 4, Out: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	var report bytes.Buffer
	sum.Write(&report)
	t.Logf("\n%s", report.String())
	if !sum.OK() {
		t.Errorf("chaos run failed:\n%s", report.String())
	}
	if sum.Verdict.Received == 0 || sum.Requests == 0 {
		t.Errorf("no decision received")
	}
	want := []string{"reload storm", "registry truncated", "registry empty", "registry deleted", "symlink", "SIGKILL"}
	if runtime.GOOS == "linux" {
		want = append(want, "decision log unwritable")
	}
	faults := strings.Join(sum.Faults, "|")
	for _, w := range want {
		if !strings.Contains(faults, w) {
			t.Errorf("faults tried: %v, want one with %q", sum.Faults, w)
		}
	}
	if runtime.GOOS == "linux" && sum.Failures["503 decision_log_unavailable"] == 0 {
		t.Errorf("no request met the unwritable decision log")
	}
	if !strings.Contains(report.String(), "\nlost: 0\nunlogged allows: 0\n") {
		t.Errorf("summary does not end in lost: 0, unlogged allows: 0")
	}
	if _, err := os.Stat(sum.Dir); err != nil {
		t.Errorf("the given directory %s is gone: %v", sum.Dir, err)
	}
}

// chained returns a log of a new hash chain holding a decision for each
// of ids.
func chained(ids ...string) []byte {
	var b []byte
	var h decisionlog.Head
	for _, id := range ids {
		start, l := len(b), line(id, "allow", "a")
		b, h = decisionlog.Link(append(b, l[:len(l)-1]...), start, h)
	}
	return b
}

// TestAddSeparate checks that a file read with AddSeparate is verified
// as a chain of its own, and the files read with Add after it continue
// that chain, as the files read with Add before it continue theirs.
func TestAddSeparate(t *testing.T) {
	first, second := chained(id1, id2), chained(id3)
	l := NewLog()
	l.Add("first", first[:bytes.IndexByte(first, '\n')+1])
	l.Add("first, rotated", first[bytes.IndexByte(first, '\n')+1:])
	l.AddSeparate("second", second)
	if v := l.Verify(nil); v.Chain == nil || !v.Chain.Intact() {
		t.Errorf("two logs, the second read with AddSeparate: chain %s, want intact", v.ChainState())
	}
	joined := NewLog()
	joined.Add("first", first)
	joined.Add("second", second)
	if v := joined.Verify(nil); v.Chain == nil || v.Chain.Intact() {
		t.Errorf("two logs, both read with Add: chain %s, want broken: the second does not continue the first", v.ChainState())
	}
	after := NewLog()
	after.AddSeparate("second", second)
	after.Add("first", first)
	if v := after.Verify(nil); v.Chain == nil || v.Chain.Intact() {
		t.Errorf("a log read with Add after one read with AddSeparate: chain %s, want broken: it continues the separate one", v.ChainState())
	}
}
