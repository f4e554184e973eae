package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/coulomb/flex-auth/internal/termsafe"
	"github.com/coulomb/flex-auth/policy"
	"github.com/spf13/cobra"
)

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Work with Markdown policy packages",
		Args:  subcommands,
		RunE:  showHelp,
	}
	cmd.AddCommand(newPolicyTestCmd())
	return cmd
}

func newPolicyTestCmd() *cobra.Command {
	var (
		policyFile, registryFile string
		packages                 []string
	)
	cmd := &cobra.Command{
		Use:   "test (--package DIR... | --policy FILE --registry SNAPSHOT)",
		Short: "Run a policy package's tests blocks against its data (exit 0 all pass, 1 a failure)",
		Long: `Test loads a policy package and its data, binds them, decides every case of
the package's tests blocks, and prints PASS or FAIL for each, with the
decision it got and the one it wanted on a failure, then a summary line.

--package DIR (repeatable) tests the package in DIR: its policy_package.md
and the data its front matter names (a registry snapshot or an entities
document). --policy and --registry test a package against a registry
snapshot named apart; the snapshot's policy_package must name the package.

Exit 0 when every test passes, 1 when one fails or a file does not load.`,
		Args: positional(),
		RunE: func(cmd *cobra.Command, args []string) error {
			var evals []*policy.Evaluator
			switch {
			case len(packages) > 0 && (policyFile != "" || registryFile != ""):
				return errors.New("policy test: give --package, or --policy and --registry, not both")
			case len(packages) > 0:
				for _, dir := range packages {
					ev, err := policy.LoadDir(dir)
					if err != nil {
						return err
					}
					evals = append(evals, ev)
				}
			case policyFile == "" || registryFile == "":
				return errors.New("policy test: give --package DIR, or both --policy and --registry")
			default:
				ev, err := loadPair(registryFile, policyFile)
				if err != nil {
					return err
				}
				evals = append(evals, ev)
			}
			failed := 0
			for i, ev := range evals {
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				failed += printTestResults(cmd.OutOrStdout(), ev, ev.RunTests())
			}
			if failed > 0 {
				return &exitError{code: 1} // the report says which
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&packages, "package", nil, "package `DIR` to test: its policy_package.md with the data its front matter names (repeatable)")
	cmd.Flags().StringVar(&policyFile, "policy", "", "policy package (Markdown) to test, with --registry")
	cmd.Flags().StringVar(&registryFile, "registry", "", "registry snapshot to test against, with --policy")
	return cmd
}

// printTestResults writes one line per test, the decisions of each failure,
// and a summary, and returns the number of failures.
func printTestResults(w io.Writer, ev *policy.Evaluator, results []policy.TestResult) (failed int) {
	pkg := ev.Package()
	if snap := ev.Registry(); snap != nil {
		fmt.Fprintf(w, "policy %s %s, registry %s (%d actors)\n", pkg.Name(), pkg.Digest(), snap.Digest, len(snap.Actors))
	} else {
		doc := ev.Entities()
		fmt.Fprintf(w, "policy %s %s, entities %s (%d entities, %d actions)\n", pkg.Name(), pkg.Digest(), doc.Digest(), doc.Len(), len(doc.Actions()))
	}
	for _, r := range results {
		if r.Passed() {
			fmt.Fprintf(w, "PASS %s\n", termsafe.Line(r.Name))
			continue
		}
		failed++
		fmt.Fprintf(w, "FAIL %s (%s:%d)\n     got:  %v\n     want: %v\n", termsafe.Line(r.Name), termsafe.Line(pkg.File()), r.Line, r.Got, r.Want)
		if r.Err != nil {
			fmt.Fprintf(w, "     error: %s\n", termsafe.Line(r.Err.Error()))
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", len(results)-failed, failed)
	if len(results) == 0 {
		fmt.Fprintf(w, "%s has no tests blocks\n", termsafe.Line(pkg.File()))
	}
	return failed
}
