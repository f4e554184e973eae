package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// BareCommand is the hidden first argument that makes the bench program
// serve the bare handler (ServeBare) instead of benchmarking. The bare
// handler runs in its own process, like flex-auth does, so that both
// servers get the same split of the two cores with the load generator: in
// the generator's process it would share one Go scheduler and one heap
// with the load, and measure something flex-auth can never be.
const BareCommand = "bare-server"

// bareDecision is the fixed answer of the bare handler: an allow the size
// and shape of a real one.
var bareDecision = []byte(`{"decision_id":"decision:0123456789abcdef","effect":"allow","reason":"signing_policy_matched",` +
	`"policy":"ops-warden/ssh-signing","policy_digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000",` +
	`"registry_digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000",` +
	`"grant":{"principal":"agt-task-bridge","ttl_hours":24}}` + "\n")

// bareAuthZENDecision is the fixed answer of the bare handler to an
// AuthZEN evaluation, the size and shape of flex-auth's.
var bareAuthZENDecision = []byte(`{"decision":true,"context":{"decision_id":"decision:0123456789abcdef","reason":"signing_policy_matched",` +
	`"grant":{"principal":"agt-task-bridge","ttl_hours":24}}}` + "\n")

// bareEntity and bareEvaluation are an AuthZEN evaluation as a plain
// handler would decode it.
type bareEntity struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Properties map[string]any `json:"properties"`
}

type bareEvaluation struct {
	Subject  *bareEntity    `json:"subject"`
	Action   *bareEntity    `json:"action"`
	Resource *bareEntity    `json:"resource"`
	Context  map[string]any `json:"context"`
}

// bareRequest is the check request as a plain handler would decode it.
type bareRequest struct {
	Subject  string         `json:"subject"`
	Action   string         `json:"action"`
	Resource string         `json:"resource"`
	Context  map[string]any `json:"context"`
}

// bareHandler is the ceiling: the least a Go HTTP service can do for a
// check request. It reads the body, decodes the JSON with encoding/json,
// checks the required members and writes a fixed decision. No policy, no
// log, no metrics.
func bareHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/check", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			http.Error(w, `{"error":{"code":"request_too_large","message":"body over 64 KiB"}}`, http.StatusRequestEntityTooLarge)
			return
		}
		var req bareRequest
		if err := json.Unmarshal(body, &req); err != nil || req.Subject == "" || req.Resource == "" {
			http.Error(w, `{"error":{"code":"invalid_request","message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(bareDecision)
	})
	mux.HandleFunc("POST /access/v1/evaluation", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
		if err != nil {
			http.Error(w, `{"error":{"code":"request_too_large","message":"body over 64 KiB"}}`, http.StatusRequestEntityTooLarge)
			return
		}
		var req bareEvaluation
		if err := json.Unmarshal(body, &req); err != nil || req.Subject == nil || req.Subject.ID == "" ||
			req.Action == nil || req.Action.Name == "" || req.Resource == nil || req.Resource.ID == "" {
			http.Error(w, `{"error":{"code":"invalid_request","message":"bad request"}}`, http.StatusBadRequest)
			return
		}
		if id := r.Header.Get("X-Request-ID"); id != "" {
			w.Header().Set("X-Request-ID", id)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(bareAuthZENDecision)
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ready"}`+"\n")
	})
	return mux
}

// ServeBare serves the bare handler on addr until ctx is done (the bench
// stops it with SIGTERM), then shuts it down.
func ServeBare(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("bare server: %w", err)
	}
	srv := &http.Server{Handler: bareHandler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("bare server: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("bare server: %w", err)
	}
	return nil
}
