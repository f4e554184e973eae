package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Set at link time: -ldflags "-X main.version=v1.2.3 -X main.commit=abc123"
// (scripts/image and .goreleaser.yaml do).
var (
	version = "dev"
	commit  = ""
)

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Args:  positional(),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, _ := debug.ReadBuildInfo()
			fmt.Fprintf(cmd.OutOrStdout(), "flex-auth %s (commit %s, %s)\n", buildVersion(info), buildCommit(info), runtime.Version())
			return nil
		},
	}
}

// buildVersion returns the version set at link time, else the module
// version the Go toolchain stamped into the binary (go install
// github.com/coulomb/flex-auth/cmd/flex-auth@v1.2.3 gives v1.2.3), else
// "dev".
func buildVersion(info *debug.BuildInfo) string {
	if version != "dev" && version != "" {
		return version
	}
	if info != nil && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "dev"
}

// buildCommit returns the commit set at link time, else the one the Go
// toolchain stamped into the binary, else "unknown".
func buildCommit(info *debug.BuildInfo) string {
	if commit != "" {
		return commit
	}
	if info != nil {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}
