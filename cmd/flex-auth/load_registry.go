package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/coulomb/flex-auth/internal/termsafe"
	"github.com/coulomb/flex-auth/registry"
	"github.com/spf13/cobra"
)

func newLoadRegistryCmd() *cobra.Command {
	var (
		file   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "load-registry --file SNAPSHOT",
		Short: "Validate a registry snapshot and print its actor count, digest and policy package",
		Args:  positional(),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := registry.Load(file)
			if asJSON {
				return printLoadJSON(cmd, file, s, err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: valid\nactors:         %d\ndigest:         %s\npolicy_package: %s\n",
				file, len(s.Actors), s.Digest, s.PolicyPackage)
			return nil
		},
	}
	cmd.Flags().StringVar(&file, "file", "", "snapshot file to validate (required)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	cmd.MarkFlagRequired("file")
	return cmd
}

// loadResult is the --json output of load-registry.
type loadResult struct {
	File          string   `json:"file"`
	Valid         bool     `json:"valid"`
	Actors        int      `json:"actors,omitempty"`
	Digest        string   `json:"digest,omitempty"`
	PolicyPackage string   `json:"policy_package,omitempty"`
	Errors        []string `json:"errors,omitempty"`
}

func printLoadJSON(cmd *cobra.Command, file string, s *registry.Snapshot, err error) error {
	res := loadResult{File: file, Valid: err == nil}
	var fe *registry.FileError
	switch {
	case err == nil:
		res.Actors, res.Digest, res.PolicyPackage = len(s.Actors), s.Digest, s.PolicyPackage
	case errors.As(err, &fe):
		for _, e := range fe.Errs {
			res.Errors = append(res.Errors, termsafe.Line(e.Error()))
		}
	default:
		res.Errors = []string{termsafe.Line(err.Error())}
	}
	enc := json.NewEncoder(cmd.OutOrStdout())
	enc.SetIndent("", "  ")
	if encErr := enc.Encode(res); encErr != nil {
		return encErr
	}
	if err != nil {
		return &exitError{code: 1} // the JSON said why
	}
	return nil
}
