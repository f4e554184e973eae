package drift

import (
	"context"
	"fmt"

	"github.com/coulomb/flex-auth/publication"
)

// pull loads the registry of the OCI publication ref names: the one its
// tag points to now. The publication is verified as a replica verifies
// it (every part against its digest and the statement), but not its
// signature: drift compares content, it does not decide what to trust.
func pull(ctx context.Context, source string, opt Options) (*Side, error) {
	ref, err := publication.ParseRef(source)
	if err != nil {
		return nil, err
	}
	timeout := opt.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	repo := publication.NewRepository(ref, publication.Options{PlainHTTP: opt.PlainHTTP})
	desc, err := repo.Resolve(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch publication: %w", err)
	}
	p, err := repo.Pull(ctx, desc, publication.VerifyOptions{})
	if err != nil {
		return nil, fmt.Errorf("fetch publication: %w", err)
	}
	side, err := decode(source, Publication, p.Registry)
	if err != nil {
		return nil, fmt.Errorf("fetch publication %s: %w", ref.At(string(desc.Digest)), err)
	}
	side.Policy = &Policy{Package: p.Statement.Package, Digest: p.Statement.PolicyDigest}
	return side, nil
}
