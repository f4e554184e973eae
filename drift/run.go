package drift

import (
	"context"
	"errors"
	"fmt"
)

// Run loads EXPECTED and ACTUAL, at the same time, and compares them
// (ComparePolicy, with opt.Policy). An error loading either side is
// returned, both when both fail; so is a checked-in policy package that is
// not the one EXPECTED's registry names (policy_package).
func Run(ctx context.Context, expected, actual string, opt Options) (*Report, error) {
	var (
		e, a       *Side
		eErr, aErr error
		done       = make(chan struct{})
	)
	go func() {
		defer close(done)
		e, eErr = Load(ctx, expected, opt)
	}()
	a, aErr = Load(ctx, actual, opt)
	<-done
	if err := errors.Join(eErr, aErr); err != nil {
		return nil, err
	}
	if p := opt.Policy; p != nil && p.Package != e.Snapshot.PolicyPackage {
		return nil, fmt.Errorf("policy %s is package %s, but EXPECTED %s is a registry for %s: give the policy package that goes with EXPECTED (or --policy-package for an inventory)",
			p.File, p.Package, e.Source, e.Snapshot.PolicyPackage)
	}
	return ComparePolicy(e, a, opt.Policy), nil
}
