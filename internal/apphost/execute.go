package apphost

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
)

// maxConflictRetries is how often a request that lost a race to another
// transaction is run again before the client is told to retry. After the
// first few, each re-run waits a moment at random, so that requests racing
// for the same keys stop meeting in lockstep.
const maxConflictRetries = 64

// submitTimeout bounds how long one run waits for its transaction to
// commit.
const submitTimeout = 30 * time.Second

// ErrAbandoned is Execute's error when ctx ended while the request waited
// to run again: the client is gone, and nothing is answered.
var ErrAbandoned = errors.New("apphost: the request ended while waiting to run again")

// CommitError is Execute's error when the request's writes did not
// commit: a conflict that outlasted the retries (it wraps
// ledger.ErrConflict), an outcome that is unknown (ledger.ErrOutcomeUnknown:
// it may have been applied), or replication failing. The client may retry.
type CommitError struct{ Err error }

func (e *CommitError) Error() string { return "the transaction did not commit: " + e.Err.Error() }
func (e *CommitError) Unwrap() error { return e.Err }

// Execute runs ep's handler for req on this node (the leader, for a
// request that writes) and commits what it wrote, running it again on
// the newer state when it lost a race to another transaction. It returns
// the handler's result and the transaction that holds it (the last
// committed one, for a request that wrote nothing).
//
// Errors: the handler's (app.ErrException for a JS exception; it is
// logged here), a state or encryption failure, *CommitError, or
// ErrAbandoned.
func (h *Host) Execute(ctx context.Context, a *app.App, ep *app.Endpoint, req *app.Request, c *Cipher) (*app.Result, log.TxID, error) {
	for attempt := 0; ; attempt++ {
		st := newAppState(h.cfg.Ledger, c)
		res, err := a.Call(ctx, ep, req, app.NewTx(st))
		if err != nil {
			if errors.Is(err, app.ErrException) {
				h.cfg.Logger.Warn("app handler failed", "endpoint", ep.Name(), "err", err)
			}
			return nil, log.TxID{}, err
		}
		if res.WriteSet == nil || len(res.WriteSet.Writes) == 0 || res.ReadOnly {
			view, seqno := h.LastCommitted()
			return res, log.TxID{View: view, Seqno: seqno}, nil
		}
		writes, err := storedWrites(c, res.WriteSet.Writes)
		if err != nil {
			return nil, log.TxID{}, err
		}
		reads := st.Reads()
		if wait := h.inflight.busy(reads); wait != nil && attempt < maxConflictRetries {
			// A transaction ahead of this one writes what it read:
			// run again once that has applied (inflightWrites).
			select {
			case <-wait:
			case <-ctx.Done():
				return nil, log.TxID{}, ErrAbandoned
			}
			continue
		}
		release := h.inflight.hold(writes)
		sctx, cancel := context.WithTimeout(ctx, submitTimeout)
		txid, err := h.cfg.Ledger.SubmitApp(sctx, &log.AppTx{Writes: writes, Reads: reads, ClaimsDigest: res.ClaimsDigest})
		cancel()
		release()
		if errors.Is(err, ledger.ErrConflict) && attempt < maxConflictRetries {
			if attempt >= 4 {
				jitter := time.NewTimer(time.Duration(rand.Int64N(int64(2 * time.Millisecond))))
				select {
				case <-jitter.C:
				case <-ctx.Done():
					jitter.Stop()
					return nil, log.TxID{}, ErrAbandoned
				}
			}
			continue
		}
		if err != nil {
			return nil, log.TxID{}, &CommitError{Err: err}
		}
		return res, txid, nil
	}
}
