package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/coulomb/flex-auth/client"
	"github.com/coulomb/flex-auth/internal/termsafe"
	"github.com/coulomb/flex-auth/smoke"
	"github.com/spf13/cobra"
)

func newCheckCmd() *cobra.Command {
	var (
		sf        serviceFlags
		principal string
		ttl       int
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "check --url URL --actor A [--subject S] [--principal P] [--ttl H] [--json]",
		Short: "Ask a running flex-auth for one signing decision (exit 0 allow, 1 deny, 2 error)",
		Long: `Check asks a running flex-auth for one ssh.sign decision, the way warden sign
asks it, and prints non-secret evidence: actor, subject, decision id, effect,
reason and grant.

--url defaults to $FLEX_AUTH_URL; --subject to $WARDEN_POLICY_SUBJECT, then to
the actor name. Without --ttl the actor's default_ttl_hours from the served
registry (GET /v1/registry) is asked for, as warden sign does.

Exit 0 only when the service answered a well-formed allow; 1 on a deny; 2 when
no decision came back (unreachable, timeout, an error status, a malformed
answer), or when the answer does not match the question (an allow granting
another principal or TTL than asked, a decision made with another registry
than the one the service reports it serves): check fails closed.

For a service served over HTTPS, --ca-cert names the CA that signed its
certificate when the system does not trust it; with mutual TLS (serve
--client-ca), --client-cert and --client-key are the certificate to present.
A TLS failure is "unreachable": exit 2.`,
		Args: positional(),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client()
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("check: %w", err)}
			}
			q := smoke.Query{Actor: sf.actor, Subject: sf.subject, Principal: principal}
			if cmd.Flags().Changed("ttl") {
				q.TTLHours = &ttl
			}
			res, err := smoke.Check(cmd.Context(), c, q)
			return printCheck(cmd, res, err, asJSON)
		},
	}
	sf.register(cmd.Flags(), "actor to sign for: the request's resource (required)", "give up, and fail closed, after this long")
	cmd.Flags().StringVar(&principal, "principal", "", "SSH principal to ask for (default: none sent)")
	cmd.Flags().IntVar(&ttl, "ttl", 0, "certificate TTL in hours to ask for (default: the actor's default_ttl_hours)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the evidence as JSON")
	return cmd
}

// checkJSON is the --json output of check: the evidence, and the error
// when no decision came back.
type checkJSON struct {
	*smoke.Result
	Error *checkError `json:"error,omitempty"`
}

type checkError struct {
	Kind    string `json:"kind"` // unreachable, server_error, malformed_answer, mismatched_answer, error
	Message string `json:"message"`
}

// printCheck prints the evidence and turns the outcome into the exit code:
// 0 only for a well-formed allow.
func printCheck(cmd *cobra.Command, res *smoke.Result, err error, asJSON bool) error {
	out := cmd.OutOrStdout()
	if asJSON {
		v := checkJSON{Result: res}
		if err != nil {
			v.Error = &checkError{Kind: errorKind(err), Message: termsafe.Line(err.Error())}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if encErr := enc.Encode(v); encErr != nil && err == nil {
			err = encErr
		}
	} else if err == nil || res.Decision != nil {
		// A decision refused for not matching the question is
		// evidence too.
		if werr := res.WriteText(out); werr != nil && err == nil {
			err = werr
		}
	}
	var me *smoke.MismatchError
	switch {
	case errors.As(err, &me):
		return &exitError{code: 2, err: fmt.Errorf("check: decision refused, failing closed: %w", err)}
	case err != nil:
		return &exitError{code: 2, err: fmt.Errorf("check: no decision, failing closed: %w", err)}
	case !res.Decision.Allowed():
		return &exitError{code: 1} // the evidence says deny and why
	}
	return nil
}

func errorKind(err error) string {
	var (
		ue *client.UnreachableError
		se *client.StatusError
		pe *client.ProtocolError
		me *smoke.MismatchError
	)
	switch {
	case errors.As(err, &me):
		return "mismatched_answer"
	case errors.As(err, &ue):
		return "unreachable"
	case errors.As(err, &se):
		return "server_error"
	case errors.As(err, &pe):
		return "malformed_answer"
	}
	return "error"
}
