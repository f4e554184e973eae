package main

import (
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/coulomb/flex-auth/examples"
	"github.com/coulomb/flex-auth/internal/termsafe"
	"github.com/coulomb/flex-auth/serve"
	"github.com/coulomb/flex-auth/source"
	"github.com/spf13/cobra"
)

func newServeCmd() *cobra.Command {
	var (
		c         serve.RunConfig
		registry  string
		policy    string
		packages  []string
		logFormat string
		remote    remoteFlags
	)
	cmd := &cobra.Command{
		Use:   "serve [--addr A] [--registry F|URL --policy F|URL | --source oci://HOST/REPO:TAG] [--package DIR]... [--log F]",
		Short: "Serve decisions over HTTP: /v1/check for ops-warden, and the AuthZEN API",
		Long: `Serve answers POST /v1/check with the decision of a policy package over a
registry snapshot, the OpenID AuthZEN Authorization API 1.0 (POST
/access/v1/evaluation, /access/v1/evaluations, /access/v1/search/subject,
/resource and /action, GET /.well-known/authzen-configuration), and GET
/healthz, /readyz, /v1/registry and /metrics.

--package DIR (repeatable) serves the policy package in DIR: its
policy_package.md and the data its front matter names, a registry snapshot
or an entities document. --registry and --policy serve a package and a
registry named apart (give both), as the first package. With none of them,
serve serves the ops-warden example built into the binary.

--registry and --policy may be http:// or https:// URLs, polled every --poll
with a conditional GET. --source serves an OCI publication (flex-auth
publish) instead, as the first package, and follows its tag: every --poll a
HEAD request asks for the tag's manifest, and a new publication is pulled,
verified (its signature against --verify-key when given; never one with a
lower serial than the one served) and swapped in as a reload is. --cache-dir
keeps the last one served on disk, for a restart while the registry is down.
A source that fails or offers a bad pair keeps the last good pair serving,
and /healthz says degraded and why.

/v1/check goes to the default package if its data is a registry, else to the
first package whose data is. An AuthZEN request on /access/v1/ goes to the
package whose resource_types has its resource's type, else to the default
package (--default-package, else the first); /PACKAGE/access/v1/... goes to
PACKAGE. --public-url is the base URL clients reach the server at, which the
AuthZEN metadata names (on a loopback address, the listener's URL).

Every decision is written to the decision
log (--log FILE; stdout by default or with -) before it is answered, and a
decision that cannot be written, or not within --log-timeout, is refused
with 503. Every record of the log is linked to the line before it by a
hash chain, continued when the server appends to an existing log and
across reopened files; with --log-sign-key, signed checkpoints of the
chain are written too. flex-auth log verify checks both. SIGHUP reloads the registry and policy and reopens the log file;
--watch also reloads when either file changes. SIGTERM and SIGINT shut down
gracefully, within --shutdown-timeout whatever the log or a reload is doing.
Operational logs go to stderr.`,
		Args: positional(),
		RunE: func(cmd *cobra.Command, args []string) error {
			logger, err := newOpsLogger(cmd, logFormat)
			if err != nil {
				return err
			}
			if err := remote.check(cmd, registry, policy, c.Watch); err != nil {
				return err
			}
			switch {
			case remote.source != "" || source.IsURL(registry) || source.IsURL(policy):
				r, err := remote.open(cmd.Context(), registry, policy, logger)
				if err != nil {
					return errors.New("serve: " + err.Error())
				}
				c.Source = serve.Source{Remote: r}
				c.Poll = remote.poll
			case registry == "" && policy == "" && len(packages) == 0:
				// serve.Run's first log line, once the port is bound, is
				// "serving the built-in ops-warden example". Logging it
				// here instead would put a line before a start-up error,
				// which must be alone on stderr.
				c.Source = serve.Source{Registry: examples.OpsWardenRegistry, Policy: examples.OpsWardenPolicy,
					FS: examples.OpsWarden, Name: "the built-in ops-warden example"}
			case registry == "" && policy == "":
			case registry == "" || policy == "":
				return errors.New("serve: --registry and --policy go together: give both, or neither")
			default:
				c.Source = serve.Source{Registry: registry, Policy: policy}
			}
			for _, dir := range packages {
				c.Packages = append(c.Packages, serve.Source{Package: dir})
			}
			hangup := make(chan os.Signal, 1)
			signal.Notify(hangup, syscall.SIGHUP)
			defer signal.Stop(hangup)
			// A decision log on a closed pipe must fail (503), not kill
			// the process with SIGPIPE.
			signal.Ignore(syscall.SIGPIPE)
			c.Hangup = hangup
			if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
				c.AfterLoad = tuneGCAfterLoad
			}
			c.Stdout = cmd.OutOrStdout()
			c.Logger = logger
			if p, ok := os.LookupEnv("FLEX_AUTH_SIGN_KEY_PASSPHRASE"); ok && c.LogSignKey != "" {
				c.LogSignKeyPassphrase = []byte(p)
			}
			if err := serve.Run(cmd.Context(), c); err != nil {
				if c.Source.Remote != nil {
					// It may quote what a registry or server answered.
					return errors.New("serve: " + termsafe.Line(err.Error()))
				}
				return errors.New("serve: " + err.Error())
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Addr, "addr", "127.0.0.1:8080", "TCP address to listen on (port 0 picks a free port)")
	f.StringVar(&registry, "registry", "", "registry snapshot `FILE` or http(s) URL (with --policy; default: the built-in ops-warden example)")
	f.StringVar(&policy, "policy", "", "policy package `FILE` or http(s) URL (with --registry)")
	remote.register(f)
	f.StringArrayVar(&packages, "package", nil, "serve the policy package in `DIR` with the data its front matter names (repeatable)")
	f.StringVar(&c.DefaultPackage, "default-package", "", "the package `NAME` that AuthZEN requests on /access/v1/ go to when no package declares their resource type (default: the first)")
	f.StringVar(&c.PublicURL, "public-url", "", "the base `URL` clients reach this server at, named by the AuthZEN metadata (default on a loopback address: the listener's URL)")
	f.StringVar(&c.LogPath, "log", "-", "decision log `FILE`, appended to; - is stdout")
	f.BoolVar(&c.LogSync, "log-sync", false, "fsync the decision log before answering each batch of decisions")
	f.DurationVar(&c.LogTimeout, "log-timeout", serve.DefaultLogTimeout, "answer 503 when a decision's log line is not written within this time (a stuck log)")
	f.StringVar(&c.LogSignKey, "log-sign-key", "", "sign checkpoints of the decision log's hash chain with this OpenSSH private key `FILE` (passphrase in $FLEX_AUTH_SIGN_KEY_PASSPHRASE); flex-auth log verify --key and ssh-keygen -Y verify -n flex-auth-log check them")
	f.IntVar(&c.CheckpointLines, "log-checkpoint-lines", serve.DefaultCheckpointLines, "with --log-sign-key, a checkpoint every this many records")
	f.DurationVar(&c.CheckpointInterval, "log-checkpoint-interval", serve.DefaultCheckpointInterval, "with --log-sign-key, a checkpoint this long after the last one when records were written since")
	f.DurationVar(&c.ReloadTimeout, "reload-timeout", serve.DefaultReloadTimeout, "give up on a reload still reading its files after this time (a hung file system)")
	f.BoolVar(&c.Watch, "watch", false, "reload when the registry or policy file changes")
	f.StringVar(&c.TLSCert, "tls-cert", "", "serve HTTPS with this certificate `FILE` (PEM, with --tls-key)")
	f.StringVar(&c.TLSKey, "tls-key", "", "private key `FILE` of --tls-cert (PEM)")
	f.StringVar(&c.ClientCA, "client-ca", "", "require client certificates signed by a CA in this `FILE` (PEM; mutual TLS)")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", serve.DefaultShutdownTimeout, "how long requests in flight may take to finish, and the decision log to flush, at shutdown")
	f.DurationVar(&c.DrainDelay, "drain-delay", 0, "at shutdown, keep serving this long with /readyz answering 503, each answer closing its connection, before closing the listener")
	f.DurationVar(&c.ReadHeaderTimeout, "read-header-timeout", serve.DefaultReadHeaderTimeout, "time allowed to read request headers")
	f.DurationVar(&c.ReadTimeout, "read-timeout", serve.DefaultReadTimeout, "time allowed to read a whole request")
	f.DurationVar(&c.WriteTimeout, "write-timeout", serve.DefaultWriteTimeout, "time allowed to answer a request")
	f.DurationVar(&c.IdleTimeout, "idle-timeout", serve.DefaultIdleTimeout, "how long an idle keep-alive connection stays open")
	f.StringVar(&logFormat, "log-format", "text", "operational log format on stderr: text or json")
	return cmd
}

// newOpsLogger returns the operational logger: slog to stderr, with the
// control characters of what files and requests hold escaped
// (termsafe.Handler).
func newOpsLogger(cmd *cobra.Command, format string) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(termsafe.Handler(slog.NewTextHandler(cmd.ErrOrStderr(), nil))), nil
	case "json":
		return slog.New(termsafe.Handler(slog.NewJSONHandler(cmd.ErrOrStderr(), nil))), nil
	}
	return nil, errors.New(`serve: --log-format must be "text" or "json"`)
}
