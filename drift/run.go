package drift

import (
	"context"
	"errors"
)

// Run loads EXPECTED and ACTUAL, at the same time, and compares them. An
// error loading either side is returned, both when both fail.
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
	return Compare(e, a), nil
}
