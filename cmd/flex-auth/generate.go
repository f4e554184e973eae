package main

import (
	"errors"
	"fmt"

	"github.com/coulomb/flex-auth/generate"
	"github.com/coulomb/flex-auth/internal/termsafe"
	"github.com/coulomb/flex-auth/inventory"
	"github.com/coulomb/flex-auth/registry"
	"github.com/spf13/cobra"
)

func newGenerateCmd() *cobra.Command {
	var output, policyPackage string
	cmd := &cobra.Command{
		Use:   "generate INVENTORY",
		Short: "Turn an ops-warden inventory into a canonical registry snapshot",
		Long: `Generate reads an ops-warden inventory.yaml ("-" for standard input) and
writes the canonical registry snapshot to standard output, or atomically to
the file given with -o. Problems are printed one per line as
FILE:LINE:COL: message. A snapshot too large for a Kubernetes ConfigMap
(1 MiB; 256 KiB with client-side kubectl apply) gets a warning on standard
error; the exit code does not change.`,
		Args: positional("INVENTORY"),
		RunE: func(cmd *cobra.Command, args []string) error {
			// generate.File reads "" as the default; on the command line an
			// empty name is a mistake, not a request for the default.
			if err := registry.CheckPackageName(policyPackage); err != nil {
				return fmt.Errorf("policy package: %w", err)
			}
			var (
				s   *registry.Snapshot
				err error
			)
			if args[0] == "-" {
				s, err = generate.Read("<stdin>", cmd.InOrStdin(), policyPackage)
			} else {
				s, err = generate.File(args[0], policyPackage)
			}
			var errs inventory.Errors
			if errors.As(err, &errs) {
				// One line per problem, as the contract wants, even when
				// there is only one (main would put its name in front).
				fmt.Fprintln(cmd.ErrOrStderr(), termsafe.Text(errs.Error()))
				return &exitError{code: 1}
			}
			if err != nil {
				return err
			}
			if output == "" || output == "-" {
				_, err = s.WriteCanonical(cmd.OutOrStdout())
			} else {
				err = generate.WriteFile(output, s)
			}
			if err != nil {
				return err
			}
			// A warning, not an error: the snapshot is valid, and not
			// every deployment puts it in a ConfigMap.
			if w := generate.Measure(s).ConfigMapWarning(); w != "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "flex-auth: warning: "+w)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the snapshot to `FILE` (atomically) instead of standard output")
	cmd.Flags().StringVar(&policyPackage, "policy-package", registry.DefaultPolicyPackage, "policy package `NAME` the snapshot is meant for")
	return cmd
}
