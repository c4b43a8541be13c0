// Package pause owns waiting that gives way to cancellation: the node's
// loops (the genesis bootstrap, the leader's upkeep, the recovery record)
// pause between tries with For, which ends early when their context does.
package pause

import (
	"context"
	"time"
)

// For waits d, or until ctx ends, whichever comes first; it returns
// ctx's error in the second case.
func For(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
