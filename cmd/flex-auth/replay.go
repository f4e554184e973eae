package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/coulomb/flex-auth/drift"
	"github.com/coulomb/flex-auth/internal/render"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/registry"
	"github.com/coulomb/flex-auth/replay"
	"github.com/spf13/cobra"
)

func newReplayCmd() *cobra.Command {
	var (
		logs         []string
		packages     []string
		registryFile string
		policyFile   string
		format       string
		maxExamples  int
	)
	cmd := &cobra.Command{
		Use:   "replay --log FILE... (--package DIR... | --registry SNAPSHOT --policy PACKAGE) [--format text|json|markdown|github]",
		Short: "Decide recorded decisions again under other policy packages: exit 0 none would change, 1 some would, 2 error",
		Long: `Replay reads decision logs (chained or written before the chain; a file
ending in .gz through gzip) and decides every recorded decision again under
the policy packages given, the way serve decides it: package directories
(--package, repeatable, as serve --package takes them: a registry package
or an AuthZEN model package with its entities document), or a registry
snapshot and a policy package file (--registry and --policy), or both.
Each decision goes to the package its line names (its "policy" member);
decisions made on the AuthZEN API are decided again from the entities
the line records.
It reports what would change: counts by transition (allow to deny, deny to
allow, the same effect for another reason), and the changed decisions
grouped by actor and by recorded and replayed outcome, with their subject,
action, decision id and time (the first --max-examples of each group).

A decision that a not_given record withdraws is decided again too: its
request was real. A decision of a policy package that none of those given
is named is not decided again; replay says so and exits 2.

Exit status: 0 no recorded decision would change, 1 some would, 2 error
(unreadable file, invalid registry or policy, decisions that could not be
decided again, bad flags).`,
		Args: positional(),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := render.ParseFormat(format)
			if err != nil {
				return usageError(cmd, err)
			}
			switch {
			case len(logs) == 0:
				return usageError(cmd, errors.New("--log is required: the decision logs to replay"))
			case (registryFile == "") != (policyFile == ""):
				return usageError(cmd, errors.New("--registry and --policy go together"))
			case registryFile == "" && len(packages) == 0:
				return usageError(cmd, errors.New("want what to decide with: --package DIR, or --registry and --policy"))
			}
			var pairs []*policy.Evaluator
			for _, dir := range packages {
				ev, err := policy.LoadDir(dir)
				if err != nil {
					return &exitError{code: 2, err: escapedError{fmt.Errorf("replay: %w", err)}}
				}
				pairs = append(pairs, ev)
			}
			if registryFile != "" {
				ev, err := loadPair(registryFile, policyFile)
				if err != nil {
					return &exitError{code: 2, err: escapedError{fmt.Errorf("replay: %w", err)}}
				}
				pairs = append(pairs, ev)
			}
			rep, err := runReplay(logs, pairs, maxExamples)
			if err != nil {
				return &exitError{code: 2, err: escapedError{fmt.Errorf("replay: %w", err)}}
			}
			if err := renderReplay(cmd.OutOrStdout(), rep, f); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("replay: %w", err)}
			}
			switch {
			case !rep.Complete():
				return &exitError{code: 2, err: fmt.Errorf("replay: %w (see the report)", replay.ErrIncomplete)}
			case rep.Changed() > 0:
				return &exitError{code: 1} // the report says what
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&logs, "log", nil, "decision log `FILE` to replay (repeatable; in the order written, which the examples follow)")
	f.StringArrayVar(&packages, "package", nil, "policy package `DIR` to decide with: its policy_package.md and the data its front matter names (repeatable)")
	f.StringVar(&registryFile, "registry", "", "registry `SNAPSHOT` to decide with (with --policy)")
	f.StringVar(&policyFile, "policy", "", "policy `PACKAGE` file to decide with (with --registry)")
	f.StringVar(&format, "format", "text", "output format: text, json, markdown or github")
	f.IntVar(&maxExamples, "max-examples", replay.DefaultMaxExamples, "decisions listed for each group of changes")
	return cmd
}

// loadPair loads a registry snapshot and a policy package and binds them.
func loadPair(registryFile, policyFile string) (*policy.Evaluator, error) {
	snap, err := registry.Load(registryFile)
	if err != nil {
		return nil, err
	}
	pkg, err := policy.Load(policyFile)
	if err != nil {
		return nil, err
	}
	ev, err := policy.NewEvaluator(pkg, snap)
	if err != nil {
		return nil, fmt.Errorf("%s and %s: %w", policyFile, registryFile, err)
	}
	return ev, nil
}

// runReplay decides the decisions of the log files again with the pairs.
func runReplay(logs []string, pairs []*policy.Evaluator, maxExamples int) (*replay.Report, error) {
	rp, err := replay.New(replay.Options{Pairs: pairs, MaxExamples: maxExamples})
	if err != nil {
		return nil, err
	}
	for _, name := range logs {
		r, closeFile, err := openLog(name)
		if err != nil {
			return nil, err
		}
		err = rp.Add(name, r)
		closeFile()
		if err != nil {
			return nil, err
		}
	}
	return rp.Report(), nil
}

// renderReplay writes the report, and for the github format also appends
// the Markdown report to the job's step summary.
func renderReplay(w io.Writer, rep *replay.Report, f render.Format) error {
	return withStepSummary(f, func(summary io.Writer) error { return rep.Render(w, f, summary, drift.MaxSummaryBytes) })
}
