// Command flex-auth turns ops-warden's inventory into a registry snapshot,
// checks snapshots for drift, and serves signing decisions over HTTP.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/coulomb/flex-auth/internal/termsafe"
	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args and returns the process exit code.
// It is the one place that turns errors into exit codes.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code, err = ee.code, ee.err
	}
	if msg := errorText(err); msg != "" {
		fmt.Fprintln(stderr, msg)
	}
	return code
}

// errorText formats err for stderr. A one-line error gets the program name
// in front; a multi-line one is a list of diagnostics that each name their
// file and position (FILE:LINE:COL: msg), and is printed as it is, the way
// compilers print them, so editors and CI annotations can parse it. Either
// way, control characters from the files and answers it quotes are escaped
// (termsafe), so that nothing in them acts on a terminal or a CI log.
func errorText(err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		return termsafe.Text(msg)
	}
	return "flex-auth: " + termsafe.Line(msg)
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "flex-auth",
		Short:         "Registry snapshots, drift checks and signing decisions for ops-warden",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          subcommands,
		RunE:          showHelp,
	}
	root.SetFlagErrorFunc(usageError)
	root.AddCommand(
		newLoadRegistryCmd(),
		newDriftCmd(),
		newGenerateCmd(),
		newVersionCmd(),
		newCheckCmd(),
		newSmokeCmd(),
		newPolicyCmd(),
		newServeCmd(),
		newPublishCmd(),
		newLogCmd(),
		newReplayCmd(),
	)
	return root
}

// An exitError carries an exit code other than 1. A nil err prints nothing:
// the command has already said what happened.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }
