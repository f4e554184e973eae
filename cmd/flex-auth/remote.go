package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/coulomb/flex-auth/internal/sshsig"
	"github.com/coulomb/flex-auth/publication"
	"github.com/coulomb/flex-auth/serve"
	"github.com/coulomb/flex-auth/source"
)

// remoteFlags are serve's flags for a source that is polled: an OCI
// publication, or URLs.
type remoteFlags struct {
	source        string
	poll          time.Duration
	verifyKey     string
	cacheDir      string
	plainHTTP     bool
	allowRollback bool
}

func (f *remoteFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.source, "source", "", "serve the OCI publication oci://HOST/REPO:TAG (flex-auth publish) and follow its tag, instead of --registry and --policy")
	fs.DurationVar(&f.poll, "poll", serve.DefaultPoll, "how often to ask --source, or the --registry and --policy URLs, for a new pair")
	fs.StringVar(&f.verifyKey, "verify-key", "", "serve only publications signed by a key in this `FILE` of OpenSSH public keys (one per line; ssh-keygen's allowed_signers format too)")
	fs.StringVar(&f.cacheDir, "cache-dir", "", "keep the last publication served in this `DIR`, verified again and served at start-up when --source cannot be reached")
	fs.BoolVar(&f.plainHTTP, "plain-http", false, "talk HTTP, not HTTPS, to --source's registry (a registry on localhost)")
	fs.BoolVar(&f.allowRollback, "allow-serial-rollback", false, "at start-up, serve what --source has even when its serial is lower than the cached publication's")
}

// check refuses flags that do not go together, before anything is read.
func (f *remoteFlags) check(cmd *cobra.Command, registry, policy string, watch bool) error {
	remote := f.source != "" || source.IsURL(registry) || source.IsURL(policy)
	ociOnly := map[string]bool{"verify-key": f.verifyKey != "", "cache-dir": f.cacheDir != "", "plain-http": f.plainHTTP, "allow-serial-rollback": f.allowRollback}
	switch {
	case f.source != "" && (registry != "" || policy != ""):
		return errors.New("serve: --source serves a publication's registry and policy: give --source, or --registry and --policy")
	case f.source == "" && (registry == "") != (policy == ""):
		return errors.New("serve: --registry and --policy go together: give both, or neither to serve the built-in ops-warden example")
	case remote && watch:
		return errors.New("serve: --watch watches files; a --source or a URL is polled (--poll), and a file given with a URL is checked at every poll")
	case !remote && cmd.Flags().Changed("poll"):
		return errors.New("serve: --poll is for --source or --registry and --policy URLs")
	case f.poll <= 0:
		return errors.New("serve: --poll must be positive")
	}
	for _, name := range []string{"verify-key", "cache-dir", "plain-http", "allow-serial-rollback"} {
		if ociOnly[name] && f.source == "" {
			return fmt.Errorf("serve: --%s is for --source (an OCI publication)", name)
		}
	}
	return nil
}

// open makes the remote source the flags ask for; it reads the trusted
// keys and the cache.
func (f *remoteFlags) open(ctx context.Context, registry, policy string, logger *slog.Logger) (source.Remote, error) {
	if f.source == "" {
		return source.NewHTTP(source.HTTPConfig{Registry: registry, Policy: policy, UserAgent: userAgent()})
	}
	ref, err := publication.ParseRef(f.source)
	if err != nil {
		return nil, fmt.Errorf("--source: %w", err)
	}
	cfg := source.OCIConfig{Ref: ref, Options: publication.Options{PlainHTTP: f.plainHTTP, UserAgent: userAgent()},
		AllowSerialRollback: f.allowRollback, Logger: logger}
	if f.verifyKey != "" {
		if cfg.Keys, err = sshsig.LoadKeys(f.verifyKey); err != nil {
			return nil, fmt.Errorf("--verify-key: %w", err)
		}
	}
	if f.cacheDir != "" {
		if cfg.Cache, err = publication.OpenCache(f.cacheDir); err != nil {
			return nil, fmt.Errorf("--cache-dir: %w", err)
		}
	}
	return source.NewOCI(ctx, cfg), nil
}
