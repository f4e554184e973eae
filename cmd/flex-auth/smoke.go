package main

import (
	"encoding/json"
	"fmt"

	"github.com/coulomb/flex-auth/smoke"
	"github.com/spf13/cobra"
)

func newSmokeCmd() *cobra.Command {
	var (
		sf     serviceFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "smoke --url URL --actor A [--subject S] [--json]",
		Short: "Pre-flight a running flex-auth: healthz, one allow, one TTL deny, one unknown actor",
		Long: `Smoke runs the pre-flight an operator needs before turning on policy.enabled
in ops-warden, and prints one line of non-secret evidence per step:

  healthz        GET /healthz answers 200 with status "ok"; "degraded" fails
                 (the last reload failed, so the service is not serving what
                 it was last given)
  registry       GET /v1/registry is a valid snapshot that lists the actor
  allow          the actor's principal and default TTL: allow,
                 signing_policy_matched, granting exactly that
  deny_ttl       max_ttl_hours+1: deny, ttl_out_of_bounds
  unknown_actor  an actor the registry does not have: deny,
                 unknown_actor_resource

--url defaults to $FLEX_AUTH_URL; --subject to $WARDEN_POLICY_SUBJECT, then to
the actor name, the subject warden sign would send from this workstation.
Exit 0 when every step went as expected, 1 otherwise (unreachable included).
--ca-cert, --client-cert and --client-key are for a service served over HTTPS
and mutual TLS, as for check.`,
		Args: positional(),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := sf.client()
			if err != nil {
				return fmt.Errorf("smoke: %w", err)
			}
			r := smoke.Run(cmd.Context(), c, sf.actor, sf.subject)
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				err = enc.Encode(r)
			} else {
				err = r.WriteText(cmd.OutOrStdout())
			}
			if err != nil {
				return err
			}
			if !r.Pass {
				return &exitError{code: 1} // the report says which step and why
			}
			return nil
		},
	}
	sf.register(cmd.Flags(), "actor to smoke-test, e.g. agt-state-hub-bridge (required)", "time limit for each request")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}
