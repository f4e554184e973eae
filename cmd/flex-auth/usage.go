package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// Usage errors, a bad flag or argument, all go through usageError: flag
// errors (the root's flag error func), argument checks (positional,
// subcommands) and the checks a command makes of its flags before it
// starts.

// usageExitCodes are the exit codes of usage errors where they are not 1:
// the commands whose contract gives exit 1 a meaning of its own (drift
// found, a deny, an invalid pair not published, a tampered log, decisions
// that would change) exit 2, so that a typo in
// a CI step can never read as a result (CONTRACT section 4).
var usageExitCodes = map[string]int{
	"flex-auth drift":   2,
	"flex-auth check":   2,
	"flex-auth publish": 2,
	// log verify: 1 is a tampered log (and "log verfy" must not read
	// as one); replay: 1 is decisions that would change.
	"flex-auth log":        2,
	"flex-auth log verify": 2,
	"flex-auth replay":     2,
}

// usageError is err as a usage error of cmd: followed by where to read the
// command's usage, with the command's exit code for usage errors.
func usageError(cmd *cobra.Command, err error) error {
	err = fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())
	if code, ok := usageExitCodes[cmd.CommandPath()]; ok {
		return &exitError{code: code, err: err}
	}
	return err
}

// positional is the argument check of a command that takes the named
// arguments, in that order, and no others.
func positional(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) == len(names):
			return nil
		case len(names) == 0:
			return usageError(cmd, fmt.Errorf("unexpected argument %q", args[0]))
		}
		plural := "s"
		if len(args) == 1 {
			plural = ""
		}
		return usageError(cmd, fmt.Errorf("want %s, got %d argument%s", strings.Join(names, " and "), len(args), plural))
	}
}

// subcommands is the argument check of a command that only groups others:
// an argument is a command it does not have. Such a command runs
// showHelp, so that cobra checks its arguments at all.
func subcommands(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	err := fmt.Errorf("unknown command %q", args[0])
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		err = fmt.Errorf("unknown command %q (did you mean %q?)", args[0], s[0])
	}
	return usageError(cmd, err)
}

// showHelp is the run of a command that only groups others.
func showHelp(cmd *cobra.Command, args []string) error { return cmd.Help() }
