package ledger

import (
	"context"

	"github.com/charterlog/charter/log"
)

// Registration is one verified statement for RegisterMany.
type Registration struct {
	Entry     [32]byte
	Statement []byte
	// Policy is SHA-256 of the registration policy that accepted it (zero:
	// none).
	Policy [32]byte
}

// RegisterMany sequences many registrations at once, as Register does each
// (a statement already in the ledger answers its existing id; one in flight,
// in this call or another, is joined), and returns each one's transaction id
// or error, in the order of regs. The new ones are queued back to back
// under one hold of the lock, so the sequencer finds them together and
// proposes them in as few raft entries as its MaxBatch and MaxBatchBytes
// allow, rather than as separate requests would arrive (a sequencer
// draining the queue at that moment may take the first few into an entry
// of their own). A full queue refuses the registrations that did not fit
// (ErrOverloaded) and keeps those that did. ctx bounds only the wait, as
// for Register.
func (l *Ledger) RegisterMany(ctx context.Context, regs []Registration) ([]log.TxID, []error) {
	txids := make([]log.TxID, len(regs))
	errs := make([]error, len(regs))
	waiters := make([]*pendingReg, len(regs))
	fresh := make([]int, 0, len(regs))
	for i, r := range regs {
		txid, err := l.lookupEntry(r.Entry)
		switch {
		case err == nil:
			txids[i] = txid
		case err != ErrNotFound:
			errs[i] = err
		default:
			fresh = append(fresh, i)
		}
	}
	overloaded := 0
	l.mu.Lock()
	for _, i := range fresh {
		r := regs[i]
		w := l.joinOrQueueLocked(log.Proposal{Type: log.TxRegistration, Entry: r.Entry, Body: r.Statement, Policy: r.Policy})
		if w == nil {
			errs[i] = ErrOverloaded
			overloaded++
			continue
		}
		waiters[i] = w
	}
	l.mu.Unlock()
	if overloaded > 0 {
		l.m.rejected.WithLabelValues("overloaded").Add(float64(overloaded))
	}
	for i, w := range waiters {
		if w == nil {
			continue
		}
		// An outcome already known wins over a context that ended while
		// an earlier one was awaited.
		select {
		case <-w.done:
			txids[i], errs[i] = w.txid, w.err
			continue
		default:
		}
		select {
		case <-w.done:
			txids[i], errs[i] = w.txid, w.err
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return txids, errs
}
