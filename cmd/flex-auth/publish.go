package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/crypto/ssh"

	"github.com/coulomb/flex-auth/internal/readfile"
	"github.com/coulomb/flex-auth/internal/sshsig"
	"github.com/coulomb/flex-auth/publication"
)

func newPublishCmd() *cobra.Command {
	var (
		registryFile, policyFile, signKey, revision string
		plainHTTP                                   bool
		serial                                      uint64
		timeout                                     time.Duration
	)
	cmd := &cobra.Command{
		Use:   "publish --registry SNAPSHOT --policy PACKAGE [--sign-key KEY] [--plain-http] oci://HOST/REPO:TAG",
		Short: "Publish a registry snapshot and its policy package as one OCI artifact (exit 0 ok, 1 invalid pair, 2 push failed)",
		Long: `Publish checks the pair exactly as serve would (the snapshot loads and its
digest matches, the policy package compiles, the snapshot is meant for the
package) and runs the package's tests blocks against the snapshot, then
pushes both as one OCI artifact to the tag, with a statement naming them by
digest and a serial, signed with --sign-key (an OpenSSH private key; SSH
signature, namespace flex-auth) when given. It prints the pushed reference
with its manifest digest: oci://HOST/REPO@sha256:...

The serial orders publications: a replica never moves to a lower one. It is
--serial, or by default the current Unix time, or one more than the serial
the tag has now when that is higher. A tag that holds something else than a
flex-auth publication is not overwritten.

Credentials come from the Docker config file ($DOCKER_CONFIG/config.json or
~/.docker/config.json, as docker login and oras login write it). A key with
a passphrase reads it from $FLEX_AUTH_SIGN_KEY_PASSPHRASE.

Exit status: 0 pushed; 1 the pair is invalid (nothing pushed); 2 anything
else: bad flags, an unreadable key, a registry that refused or could not be
reached.`,
		Args: positional("one oci://HOST/REPO:TAG"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if registryFile == "" || policyFile == "" {
				return usageError(cmd, errors.New("--registry and --policy are required: the pair to publish"))
			}
			ref, err := publication.ParseRef(args[0])
			if err == nil && ref.Tag() == "" {
				err = fmt.Errorf("%s: publish to a tag (oci://HOST/REPO:TAG); a digest cannot be published to", args[0])
			}
			if err != nil {
				return usageError(cmd, err)
			}
			content, err := preparePair(cmd, registryFile, policyFile)
			if err != nil {
				return err
			}
			var signer ssh.Signer
			if signKey != "" {
				var passphrase []byte
				if p, ok := os.LookupEnv("FLEX_AUTH_SIGN_KEY_PASSPHRASE"); ok {
					passphrase = []byte(p)
				}
				if signer, err = sshsig.LoadSigner(signKey, passphrase); err != nil {
					return &exitError{code: 2, err: fmt.Errorf("--sign-key: %w", err)}
				}
			}
			if revision == "" {
				revision = sourceRevision(registryFile, policyFile)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			repo := publication.NewRepository(ref, publication.Options{PlainHTTP: plainHTTP, UserAgent: userAgent()})
			n, err := chooseSerial(ctx, repo, serial)
			if err != nil {
				return pushFailed(err)
			}
			p, err := content.Seal(publication.SealOptions{Serial: n, Signer: signer, Revision: revision})
			if err != nil {
				return &exitError{code: 2, err: fmt.Errorf("publish: %w", err)}
			}
			start := time.Now()
			desc, err := repo.Push(ctx, p)
			if err != nil {
				return pushFailed(err)
			}
			signed := "unsigned"
			if signer != nil {
				signed = "signed by " + sshsig.Fingerprint(signer.PublicKey())
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "published %s: policy %s %s, registry %s (%d actors), serial %d, %s, in %s\n",
				ref, p.Statement.Package, p.Statement.PolicyDigest, p.Statement.RegistryDigest, len(p.Snapshot.Actors), n, signed,
				time.Since(start).Round(time.Millisecond))
			fmt.Fprintln(cmd.OutOrStdout(), ref.At(string(desc.Digest)))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&registryFile, "registry", "", "registry snapshot `FILE` to publish (required)")
	f.StringVar(&policyFile, "policy", "", "policy package `FILE` to publish with it (required)")
	f.StringVar(&signKey, "sign-key", "", "sign the publication with this OpenSSH private key `FILE`")
	f.BoolVar(&plainHTTP, "plain-http", false, "talk HTTP, not HTTPS, to the registry (a registry on localhost)")
	f.Uint64Var(&serial, "serial", 0, "the publication's serial (default: the Unix time, or one more than the tag's serial when that is higher)")
	f.StringVar(&revision, "revision", "", "the source revision to record (default: $GITHUB_SHA, else the git commit of the two files when they are committed unchanged)")
	f.DurationVar(&timeout, "timeout", 5*time.Minute, "time limit for the whole push")
	return cmd
}

// pushFailed makes err publish's exit 2. Its text may quote what a
// registry answered, so it is escaped for the terminal (termsafe.Text).
func pushFailed(err error) error {
	return &exitError{code: 2, err: escapedError{fmt.Errorf("publish: %w", err)}}
}

// preparePair reads and checks the pair to publish; a failure is exit 1,
// with the failing tests listed as `policy test` lists them.
func preparePair(cmd *cobra.Command, registryFile, policyFile string) (*publication.Content, error) {
	reg, err := readfile.Read(registryFile, readfile.Registry)
	if err != nil {
		return nil, fmt.Errorf("publish: read registry: %w", err)
	}
	pol, err := readfile.Read(policyFile, readfile.Policy)
	if err != nil {
		return nil, fmt.Errorf("publish: read policy: %w", err)
	}
	content, err := publication.Prepare(registryFile, reg, policyFile, pol)
	var tf *publication.TestsFailedError
	if errors.As(err, &tf) {
		printTestResults(cmd.ErrOrStderr(), tf.Evaluator, tf.Results)
		return nil, fmt.Errorf("publish: %w; nothing was pushed", err)
	}
	return content, err
}

// chooseSerial returns the serial to publish with: want when set, else
// the Unix time or one more than the tag's serial, whichever is higher.
// A tag that is not a publication, or whose serial is higher than want,
// is an error.
func chooseSerial(ctx context.Context, repo *publication.Repository, want uint64) (uint64, error) {
	current, digest, err := repo.Current(ctx)
	if err != nil {
		if errors.Is(err, publication.ErrNotPublication) {
			return 0, fmt.Errorf("%w; it is not overwritten: publish to another tag", err)
		}
		return 0, err
	}
	if want != 0 {
		if current != nil && want < current.Serial {
			return 0, fmt.Errorf("--serial %d is lower than the serial %d of the publication %s has now (%s): replicas would not move to it; to roll back, publish the old pair with a higher serial",
				want, current.Serial, repo.Ref(), digest)
		}
		return want, nil
	}
	n := uint64(time.Now().Unix())
	if current != nil && current.Serial >= n {
		n = current.Serial + 1
	}
	return n, nil
}

// sourceRevision returns the revision the pair comes from: $GITHUB_SHA
// in GitHub Actions, else the git commit of the files when both are
// committed and unchanged, else "".
func sourceRevision(files ...string) string {
	if sha := os.Getenv("GITHUB_SHA"); sha != "" {
		return sha
	}
	dir := filepath.Dir(files[0])
	git := func(args ...string) (string, error) {
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
		return strings.TrimSpace(string(out)), err
	}
	head, err := git("rev-parse", "--verify", "HEAD")
	if err != nil {
		return ""
	}
	abs := make([]string, len(files))
	for i, f := range files {
		if abs[i], err = filepath.Abs(f); err != nil {
			return ""
		}
	}
	// Both tracked, and neither changed since the commit.
	if _, err := git(append([]string{"ls-files", "--error-unmatch", "--"}, abs...)...); err != nil {
		return ""
	}
	if status, err := git(append([]string{"status", "--porcelain", "--"}, abs...)...); err != nil || status != "" {
		return ""
	}
	return head
}

// userAgent is what flex-auth says it is to registries and servers.
func userAgent() string {
	info, _ := debug.ReadBuildInfo()
	return "flex-auth/" + buildVersion(info)
}
