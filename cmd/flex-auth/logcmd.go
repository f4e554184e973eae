package main

import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/coulomb/flex-auth/decisionlog"
	"github.com/coulomb/flex-auth/internal/sshsig"
	"github.com/coulomb/flex-auth/internal/termsafe"
	"github.com/spf13/cobra"
)

func newLogCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "log",
		Short: "Work with decision logs",
		Args:  subcommands,
		RunE:  showHelp,
	}
	cmd.AddCommand(newLogVerifyCmd())
	return cmd
}

func newLogVerifyCmd() *cobra.Command {
	var (
		keysFile string
		heads    []string
	)
	cmd := &cobra.Command{
		Use:   "verify [--key PUBKEYS] [--head SEQ:HASH]... FILE...",
		Short: "Prove that decision log files are complete and unaltered: exit 0 intact, 1 tampered, 2 error",
		Long: `Verify checks the hash chain of decision log files, given in the order they
were written (a rotated file first; a file ending in .gz is read through
gzip): every record links to the line before it, seq counts up by one,
and nothing is in the files but records and the fragments of writes cut
short (reported, never counted as decisions). It names the first line
that breaks the chain and why: modified, inserted, deleted, repeated or
moved.

With --key (OpenSSH public keys, one a line, or an allowed_signers file)
every signed checkpoint in the files must verify with one of the keys in
the namespace flex-auth-log, and at least one must be there: an attacker
who rewrites the log and computes the hashes again cannot sign. Records
after the last checkpoint are not covered by a signature; the report says
how many. --head takes a chain head recorded from the server's /healthz
(decision_log.seq and .head, as SEQ:sha256:HASH): the log must still
hold the chain as it stood then, which also proves that nothing up to
that point was cut from its end.

Exit status: 0 intact, 1 tampered (or a recorded head missing, or with
--key nothing signed), 2 error (unreadable file, bad key file, bad flags).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError(cmd, fmt.Errorf("want one or more decision log files"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opt := decisionlog.Options{}
			for _, h := range heads {
				head, err := decisionlog.ParseHead(h)
				if err != nil {
					return usageError(cmd, fmt.Errorf("--head %s: %w", h, err))
				}
				opt.Heads = append(opt.Heads, head)
			}
			if keysFile != "" {
				keys, err := sshsig.LoadKeys(keysFile)
				if err != nil {
					return &exitError{code: 2, err: fmt.Errorf("log verify: --key: %w", err)}
				}
				opt.Keys = keys
			}
			v := decisionlog.NewVerifier(opt)
			for _, name := range args {
				if err := verifyFile(v, name); err != nil {
					return &exitError{code: 2, err: escapedError{fmt.Errorf("log verify: %w", err)}}
				}
			}
			res := v.Result()
			var out strings.Builder
			res.Write(&out, opt.Heads)
			io.WriteString(cmd.OutOrStdout(), termsafe.Text(out.String()))
			if !res.Intact() {
				return &exitError{code: 1} // the report says why
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keysFile, "key", "", "trusted public keys (`PUBKEYS`: OpenSSH public keys or an allowed_signers file) that must have signed the checkpoints")
	cmd.Flags().StringArrayVar(&heads, "head", nil, "a chain head recorded from /healthz (`SEQ:sha256:HASH`) that the log must still hold; repeatable")
	return cmd
}

// verifyFile adds the decision log file name to v, through gzip when its
// name ends in .gz.
func verifyFile(v *decisionlog.Verifier, name string) error {
	r, closeFile, err := openLog(name)
	if err != nil {
		return err
	}
	defer closeFile()
	return v.Add(name, r)
}

// openLog opens a decision log file for reading, through gzip when its
// name ends in .gz (logrotate's compress).
func openLog(name string) (io.Reader, func(), error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	if !strings.HasSuffix(name, ".gz") {
		return f, func() { f.Close() }, nil
	}
	z, err := gzip.NewReader(f)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return z, func() { z.Close(); f.Close() }, nil
}
