package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coulomb/flex-auth/drift"
	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/render"
	"github.com/coulomb/flex-auth/internal/termsafe"
	"github.com/coulomb/flex-auth/policy"
	"github.com/coulomb/flex-auth/prcomment"
	"github.com/coulomb/flex-auth/registry"
	"github.com/coulomb/flex-auth/replay"
	"github.com/spf13/cobra"
)

func newDriftCmd() *cobra.Command {
	var (
		format        string
		write         bool
		comment       bool
		policyPackage string
		timeout       time.Duration
		plainHTTP     bool
		policyFile    string
		decisions     []string
	)
	cmd := &cobra.Command{
		Use:   "drift EXPECTED ACTUAL",
		Short: "Compare two registries: exit 0 in sync, 1 drift, 2 error",
		Long: `Compare EXPECTED (what should be) with ACTUAL (what is). Each is an
inventory (.yaml, .yml), a snapshot file (.json), a running flex-auth
(http:// or https:// base URL) or an OCI publication (oci://HOST/REPO:TAG,
as flex-auth publish pushed it; --plain-http for a registry on localhost).
ACTUAL is in sync when it has the same
content and, as a file, exactly the canonical bytes.

With --policy (the checked-in policy package that goes with EXPECTED),
the policy is compared too: a running flex-auth that serves another
package (its X-Flex-Auth-Policy-Digest header), or a publication that
carries another (its statement), is drift, on either side. A side that
does not say which policy it serves (a file, an older flex-auth) is not
compared, and the report says so. Without --policy, policies are shown
but never drift.

With --decisions (decision logs, such as a sample of production's) and
--policy, the report gains the impact on recorded decisions: replay
decides each again under EXPECTED's registry and that package, and says
which would change (flex-auth replay). It does not change the exit
status, unless decisions cannot be decided again (2); a pull-request
comment is also made when decisions would change though ACTUAL is in
sync.

Exit status: 0 in sync, 1 drift, 2 error (unreadable or invalid input,
unreachable service, bad flags, failure to write or to comment).`,
		Args: positional("EXPECTED", "ACTUAL"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := drift.ParseFormat(format)
			if err != nil {
				return usageError(cmd, err)
			}
			if err := checkDriftFlags(args[1], write, comment); err != nil {
				return usageError(cmd, err)
			}
			if err := registry.CheckPackageName(policyPackage); err != nil {
				return usageError(cmd, fmt.Errorf("policy package: %w", err))
			}
			if len(decisions) > 0 && policyFile == "" {
				return usageError(cmd, errors.New("--decisions needs --policy: the policy package that decides them again with EXPECTED's registry"))
			}
			var gh prcomment.Config
			if comment {
				if gh, err = githubFromEnv(); err != nil {
					return driftFailed(fmt.Errorf("--github-comment: %w", err))
				}
			}
			opt := drift.Options{PolicyPackage: policyPackage, Timeout: timeout, PlainHTTP: plainHTTP}
			var pkg *policy.Package
			if policyFile != "" {
				if pkg, err = policy.Load(policyFile); err != nil {
					return driftFailed(fmt.Errorf("--policy: %w", err))
				}
				opt.Policy = drift.CheckedIn(pkg)
			}
			rep, err := drift.Run(cmd.Context(), args[0], args[1], opt)
			if err != nil {
				return driftFailed(err)
			}
			var impact *replay.Report
			if len(decisions) > 0 {
				if impact, err = driftImpact(rep, pkg, decisions); err != nil {
					return driftFailed(err)
				}
				rep.Sections = append(rep.Sections, impact)
			}
			if err := renderDrift(cmd.OutOrStdout(), rep, f); err != nil {
				return driftFailed(err)
			}
			if comment {
				if err := postDriftComment(cmd, gh, rep); err != nil {
					return driftFailed(err)
				}
			}
			if impact != nil && !impact.Complete() {
				return driftFailed(fmt.Errorf("impact on recorded decisions: %w (see the report)", replay.ErrIncomplete))
			}
			if write {
				return writeDrift(cmd, rep)
			}
			if !rep.InSync() {
				return &exitError{code: 1} // the report said why
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&format, "format", "text", "output format: text, json, markdown or github")
	cmd.Flags().BoolVar(&write, "write", false, "rewrite the ACTUAL snapshot file with EXPECTED's canonical form and exit 0")
	cmd.Flags().BoolVar(&comment, "github-comment", false, "keep one pull-request comment per ACTUAL file up to date (reads GITHUB_TOKEN, GITHUB_REPOSITORY, GITHUB_EVENT_PATH, GITHUB_API_URL)")
	cmd.Flags().StringVar(&policyPackage, "policy-package", registry.DefaultPolicyPackage, "policy package that inventories are generated for")
	cmd.Flags().DurationVar(&timeout, "timeout", drift.DefaultTimeout, "time limit for fetching a running flex-auth's registry, or a publication")
	cmd.Flags().BoolVar(&plainHTTP, "plain-http", false, "talk HTTP, not HTTPS, to the registry of an oci:// side (a registry on localhost)")
	cmd.Flags().StringVar(&policyFile, "policy", "", "the checked-in policy package `FILE` that goes with EXPECTED: a running flex-auth or publication serving another is drift (and --decisions replays under it)")
	cmd.Flags().StringArrayVar(&decisions, "decisions", nil, "decision log `FILE` to replay under EXPECTED and --policy: the report gains the impact on recorded decisions (repeatable)")
	return cmd
}

// driftImpact replays the decision logs under EXPECTED's registry and the
// policy package pkg.
func driftImpact(rep *drift.Report, pkg *policy.Package, decisions []string) (*replay.Report, error) {
	ev, err := policy.NewEvaluator(pkg, rep.Expected.Snapshot)
	if err != nil {
		return nil, fmt.Errorf("--policy %s with EXPECTED %s: %w", pkg.File(), rep.Expected.Source, err)
	}
	imp, err := runReplay(decisions, []*policy.Evaluator{ev}, replay.DefaultMaxExamples)
	if err != nil {
		return nil, fmt.Errorf("impact on recorded decisions: %w", err)
	}
	return imp, nil
}

// postDriftComment keeps the pull request's drift comment for ACTUAL up to
// date: created on drift (or when recorded decisions would change), edited
// on every run, never created when in sync with nothing to say.
func postDriftComment(cmd *cobra.Command, gh prcomment.Config, rep *drift.Report) error {
	key := commentKey(rep.Actual)
	res, err := prcomment.Upsert(cmd.Context(), gh, key, rep.Markdown(prcomment.Room(key)), rep.Notable())
	if err != nil {
		return fmt.Errorf("--github-comment: %w", err)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "pull request comment %s %s\n", res.Action, termsafe.Line(res.URL))
	return nil
}

// driftFailed makes err drift's exit 2. Its text may quote a file or a
// remote answer, so it is escaped for the terminal, line by line
// (termsafe.Text); URLs in it come without credentials from drift itself.
func driftFailed(err error) error {
	return &exitError{code: 2, err: escapedError{err}}
}

type escapedError struct{ err error }

func (e escapedError) Error() string { return termsafe.Text(e.err.Error()) }
func (e escapedError) Unwrap() error { return e.err }

// writeDrift rewrites ACTUAL with EXPECTED's canonical form: exit 0 once
// done, 2 when it cannot be.
func writeDrift(cmd *cobra.Command, rep *drift.Report) error {
	changed, err := rep.Write()
	if err != nil {
		return driftFailed(err)
	}
	if changed {
		fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s from %s\n", termsafe.Line(rep.Actual.Source), termsafe.Line(rep.Expected.Source))
	}
	return nil
}

// checkDriftFlags refuses flag combinations before anything is loaded.
func checkDriftFlags(actual string, write, comment bool) error {
	if write && comment {
		return errors.New("--write and --github-comment do not go together: one fixes ACTUAL, the other reports on it")
	}
	if write {
		if kind, err := drift.KindOf(actual); err == nil && kind != drift.File {
			return fmt.Errorf("--write: ACTUAL %s is not a snapshot file (.json); only a snapshot file can be rewritten", drift.Label(actual))
		}
	}
	return nil
}

// renderDrift writes the report, and for the github format also appends
// the Markdown report to the job's step summary.
func renderDrift(w io.Writer, rep *drift.Report, f drift.Format) error {
	return withStepSummary(f, func(summary io.Writer) error { return rep.Render(w, f, summary) })
}

// withStepSummary calls write with the job's step summary
// ($GITHUB_STEP_SUMMARY), opened for appending, when the format is github
// and the variable is set; else with nil.
func withStepSummary(f render.Format, write func(summary io.Writer) error) error {
	path := os.Getenv("GITHUB_STEP_SUMMARY")
	if f != render.GitHub || path == "" {
		return write(nil)
	}
	sf, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open step summary: %w", err)
	}
	defer sf.Close()
	return write(sf)
}

// commentKey names ACTUAL for the sticky comment's marker, so that
// "./x.json" and "x.json" share one comment. A URL's Source comes without
// its credentials, so the marker stays the same when they change.
func commentKey(actual *drift.Side) string {
	if !actual.IsFile() {
		return actual.Source
	}
	return filepath.ToSlash(filepath.Clean(actual.Source))
}

// githubFromEnv reads where to comment from an Actions run's environment.
func githubFromEnv() (prcomment.Config, error) {
	cfg := prcomment.Config{Token: os.Getenv("GITHUB_TOKEN"), APIURL: os.Getenv("GITHUB_API_URL")}
	if cfg.Token == "" {
		return cfg, errors.New("GITHUB_TOKEN is not set; give the step env: GITHUB_TOKEN: ${{ github.token }}")
	}
	var err error
	if cfg.Owner, cfg.Repo, err = prcomment.SplitRepository(os.Getenv("GITHUB_REPOSITORY")); err != nil {
		return cfg, fmt.Errorf("GITHUB_REPOSITORY: %w", err)
	}
	path := os.Getenv("GITHUB_EVENT_PATH")
	if path == "" {
		return cfg, errors.New("GITHUB_EVENT_PATH is not set: not running in GitHub Actions")
	}
	event, err := readfile.Read(path, readfile.GitHubEvent)
	if err != nil {
		return cfg, fmt.Errorf("GITHUB_EVENT_PATH: %w", err)
	}
	if cfg.Number, err = prcomment.EventNumber(event); err != nil {
		return cfg, fmt.Errorf("GITHUB_EVENT_PATH %s: %w", path, err)
	}
	if strings.TrimSpace(cfg.APIURL) == "" {
		cfg.APIURL = "https://api.github.com"
	}
	return cfg, nil
}
