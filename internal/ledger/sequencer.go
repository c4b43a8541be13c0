package ledger

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
)

// Register sequences a registration whose statement the caller has verified
// and returns its transaction id once it is applied. A statement already in
// the ledger returns the existing id; one already in flight joins that
// registration. ctx bounds only the wait: the registration stays queued
// after ctx ends, and a later call for the same entry finds it.
func (l *Ledger) Register(ctx context.Context, entry [32]byte, statement []byte, policy [32]byte) (log.TxID, error) {
	if txid, err := l.lookupEntry(entry); err == nil {
		return txid, nil
	} else if err != ErrNotFound {
		return log.TxID{}, err
	}
	return l.await(ctx, log.Proposal{Type: log.TxRegistration, Entry: entry, Body: statement, Policy: policy})
}

// SubmitWrites proposes a write set and returns its transaction id once it
// is applied. Identical write sets in flight at the same time are one
// transaction. The caller (governance, apps) has decided the writes against
// the applied state and serialises its own read-modify-write cycles.
func (l *Ledger) SubmitWrites(ctx context.Context, ws *log.WriteSet) (log.TxID, error) {
	if err := ws.Validate(); err != nil {
		return log.TxID{}, err
	}
	if m := touchesReserved(ws); m != "" {
		return log.TxID{}, fmt.Errorf("ledger: map %q is maintained by the nodes; no write set may write it", m)
	}
	body, err := log.MarshalWriteSet(ws)
	if err != nil {
		return log.TxID{}, err
	}
	return l.submit(ctx, log.TxWrites, body)
}

// submit queues a transaction body for the sequencer and waits until it is
// applied (or refused when applied). Identical bodies in flight at once
// are one transaction.
func (l *Ledger) submit(ctx context.Context, t log.TxType, body []byte) (log.TxID, error) {
	return l.await(ctx, log.Proposal{Type: t, Entry: sha256.Sum256(body), Body: body})
}

// await queues prop for the sequencer and waits until it is applied (or
// refused when applied) or ctx ends. A proposal of the same entry already
// in flight is joined, not queued again: identical bodies in flight at once
// are one transaction. A full queue is ErrOverloaded, counted for
// registrations.
func (l *Ledger) await(ctx context.Context, prop log.Proposal) (log.TxID, error) {
	l.mu.Lock()
	w := l.joinOrQueueLocked(prop)
	l.mu.Unlock()
	if w == nil {
		if prop.Type == log.TxRegistration {
			l.m.rejected.WithLabelValues("overloaded").Inc()
		}
		return log.TxID{}, ErrOverloaded
	}
	select {
	case <-w.done:
		return w.txid, w.err
	case <-ctx.Done():
		return log.TxID{}, ctx.Err()
	}
}

// joinOrQueueLocked returns the waiter of prop's entry: the proposal of
// that entry already in flight, or a new one queued for the sequencer; nil
// when the queue is full. l.mu is held.
func (l *Ledger) joinOrQueueLocked(prop log.Proposal) *pendingReg {
	if w, inFlight := l.pending[prop.Entry]; inFlight {
		return w
	}
	w := &pendingReg{prop: prop, done: make(chan struct{})}
	select {
	case l.queue <- w:
		l.pending[prop.Entry] = w
		return w
	default:
		return nil
	}
}

// GetKV returns key of map m from the applied state, or ErrNotFound.
func (l *Ledger) GetKV(m string, key []byte) ([]byte, error) {
	v, err := l.kv.get(l.st, m, key)
	if store.IsNotFound(err) {
		return nil, ErrNotFound
	}
	return v, err
}

// ScanKV calls fn for every key of map m in the applied state, in order.
func (l *Ledger) ScanKV(m string, fn func(key, value []byte) error) error { return l.st.ScanKV(m, fn) }

// Pending reports whether a registration for entry is queued or proposed on
// this node and not yet applied.
func (l *Ledger) Pending(entry [32]byte) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	_, ok := l.pending[entry]
	return ok
}

// ProposeGenesis proposes the transaction that creates the network. It is a
// no-op on a ledger that already has one.
func (l *Ledger) ProposeGenesis(ctx context.Context, p Proposer, body []byte) error {
	if l.State().Size > 0 {
		return nil
	}
	data, err := log.MarshalBatch(&log.Batch{Proposals: []log.Proposal{{Type: log.TxGenesis, Body: body}}})
	if err != nil {
		return err
	}
	return p.Propose(ctx, data)
}

// WaitApplied blocks until the ledger holds at least size transactions.
func (l *Ledger) WaitApplied(ctx context.Context, size uint64) error {
	return l.wait(ctx, func(st *State) bool { return st.Size >= size }, func() chan struct{} { return l.applied })
}

// WaitCovered blocks until a checkpoint covers seqno.
func (l *Ledger) WaitCovered(ctx context.Context, seqno uint64) error {
	return l.wait(ctx, func(st *State) bool { return st.LastCheckpointSize >= seqno }, func() chan struct{} { return l.covered })
}

// wait blocks until ready holds for the applied state, rechecking each time
// the broadcast channel that signal returns (read under the lock) closes.
func (l *Ledger) wait(ctx context.Context, ready func(*State) bool, signal func() chan struct{}) error {
	for {
		l.mu.RLock()
		ok, ch := ready(&l.state), signal()
		l.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// RunSequencer drains the registration queue into raft entries while this
// node leads, until ctx ends. It is the only proposer of registrations.
func (l *Ledger) RunSequencer(ctx context.Context, p Proposer) error {
	sweep := time.NewTicker(100 * time.Millisecond)
	defer sweep.Stop()
	// The entry filter is built and rebuilt beside the sequencer, which
	// every node runs, and stops with it (before the store closes).
	fctx, stopFilter := context.WithCancel(ctx)
	filterDone := make(chan struct{})
	go func() { defer close(filterDone); l.maintainFilter(fctx) }()
	defer func() { stopFilter(); <-filterDone }()
	for {
		var first *pendingReg
		select {
		case first = <-l.queue:
		case <-sweep.C:
			l.failOrphans(p)
			continue
		case <-ctx.Done():
			l.failQueued(ErrStopped)
			return nil
		}
		batch := []*pendingReg{first}
		size := len(first.prop.Body)
	fill:
		for len(batch) < l.cfg.MaxBatch && size < l.cfg.MaxBatchBytes {
			select {
			case w := <-l.queue:
				batch = append(batch, w)
				size += len(w.prop.Body)
			default:
				break fill
			}
		}
		l.propose(ctx, p, batch)
	}
}

func (l *Ledger) propose(ctx context.Context, p Proposer, batch []*pendingReg) {
	timing := l.m.proposing.Begin()
	defer timing.Finish(l.m.sequencing)
	if leader, _ := p.Leader(); !leader {
		l.fail(batch, ErrNotLeader)
		return
	}
	props := make([]log.Proposal, len(batch))
	for i, w := range batch {
		props[i] = w.prop
	}
	data, err := log.MarshalBatch(&log.Batch{Proposals: props})
	if err != nil {
		l.fail(batch, err)
		return
	}
	_, term := p.Leader()
	l.mu.Lock()
	for _, w := range batch {
		w.term = term
	}
	l.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Propose(pctx, data); err != nil {
		if errors.Is(err, ErrDropped) {
			// Raft refused it: it is in no log, and will never commit.
			l.fail(batch, err)
			return
		}
		// Raft may have taken it before the wait ended: its fate is
		// decided like that of a proposal orphaned by a leader change.
		l.log.Info("proposal outcome unknown; waiting to learn it", "registrations", len(batch), "err", err)
		l.mu.Lock()
		for _, w := range batch {
			w.uncertain = true
		}
		l.mu.Unlock()
		return
	}
	l.m.batches.Inc()
	l.m.batchSize.Observe(float64(len(batch)))
}

func (l *Ledger) fail(batch []*pendingReg, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range batch {
		if l.pending[w.prop.Entry] == w {
			delete(l.pending, w.prop.Entry)
			w.err = err
			close(w.done)
		}
	}
}

// defaultOrphanGrace is how long an orphaned proposal waits for a later
// leader's entries before it is answered ErrOutcomeUnknown: long enough
// for a connected node to see the next leader's first entry (an election
// takes one to two election timeouts, 0.5–1 s by default), short enough
// that a client of a node cut off from the quorum hears soon.
const defaultOrphanGrace = time.Second

// failOrphans settles registrations whose proposal may have been lost: those
// proposed in an earlier term, or while this node led if it no longer does,
// and those whose Propose ended without an answer. Their waiters would
// otherwise wait forever. Raft's log matching decides most of them: once
// this node applies an entry of a term later than the proposal's, every
// entry of the proposal's term that will ever commit precedes it in the
// log, so the proposal was applied already (and answered) or never commits:
// ErrDropped, truthfully. Until then it may still commit under the next
// leader, and after orphanGrace it is answered ErrOutcomeUnknown; if it
// commits after all, it is applied as usual and the client's retry finds
// it as a duplicate.
//
// The term recorded at proposal time is read from the Ready loop's view and
// can lag raft's by one Ready: only if this node lost and regained
// leadership within that instant could the entry's term be later, and then
// the later-term entry that settles it would be its own or one after it.
func (l *Ledger) failOrphans(p Proposer) {
	leader, term := p.Leader()
	now := time.Now()
	l.mu.Lock()
	var dropped, unknown []*pendingReg
	for _, w := range l.pending {
		if w.term == 0 || (leader && w.term == term && !w.uncertain) {
			continue
		}
		switch {
		case l.appliedTerm > w.term:
			dropped = append(dropped, w)
		case w.orphaned.IsZero():
			w.orphaned = now
		case now.Sub(w.orphaned) >= l.orphanGrace:
			unknown = append(unknown, w)
		}
	}
	l.mu.Unlock()
	if len(dropped) > 0 {
		l.log.Info("failing registrations a later leader did not commit", "count", len(dropped))
		l.fail(dropped, fmt.Errorf("%w: leadership changed before it committed, and the new leader's log does not have it", ErrDropped))
	}
	if len(unknown) > 0 {
		l.log.Info("registrations proposed before a leader change: outcome unknown", "count", len(unknown))
		l.fail(unknown, fmt.Errorf("%w: leadership changed after it was proposed, and this node has not learned whether it committed", ErrOutcomeUnknown))
	}
}

func (l *Ledger) failQueued(err error) {
	for {
		select {
		case w := <-l.queue:
			l.fail([]*pendingReg{w}, err)
		default:
			return
		}
	}
}

// RunCheckpointer makes checkpoints while this node leads, until ctx ends:
// when transactions other than checkpoints were applied since the newest
// checkpoint, and either CheckpointInterval has passed since the previous
// one or CheckpointMaxTx transactions are uncovered. It signs only applied,
// hence committed, tree heads.
func (l *Ledger) RunCheckpointer(ctx context.Context, p Proposer, signer TreeHeadSigner, now func() time.Time) error {
	if now == nil {
		now = time.Now
	}
	timer := time.NewTimer(l.cfg.CheckpointInterval)
	defer timer.Stop()
	var (
		last        time.Time // when the previous checkpoint was proposed
		inflight    uint64    // tree size of a proposed, not yet applied checkpoint
		inflightAge time.Time
	)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-l.kick:
		case <-timer.C:
		}
		st := l.State()
		if st.LastContentSeqno <= st.LastCheckpointSize {
			continue // idle: nothing uncovered
		}
		if leader, _ := p.Leader(); !leader {
			continue
		}
		t := now()
		if inflight > st.LastCheckpointSize && t.Sub(inflightAge) < 2*time.Second {
			// A checkpoint is on its way; wait for it unless it was lost.
			resetTimer(timer, l.cfg.CheckpointInterval)
			continue
		}
		if due := last.Add(l.cfg.CheckpointInterval); t.Before(due) && st.Size-st.LastCheckpointSize < l.cfg.CheckpointMaxTx {
			resetTimer(timer, due.Sub(t))
			continue
		}
		data, err := l.signCheckpoint(st.Size, signer, t)
		var signing *signingError
		if errors.As(err, &signing) {
			l.log.Error("signing checkpoint failed", "tree_size", st.Size, "err", signing.err)
			resetTimer(timer, l.cfg.CheckpointInterval)
			continue
		}
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = p.Propose(pctx, data)
		cancel()
		if err != nil {
			l.log.Warn("proposing checkpoint failed", "tree_size", st.Size, "err", err)
			resetTimer(timer, l.cfg.CheckpointInterval)
			continue
		}
		last, inflight, inflightAge = t, st.Size, t
		l.m.checkpoints.Inc()
		resetTimer(timer, l.cfg.CheckpointInterval)
	}
}

// signingError is a signer's failure to sign a checkpoint, which the
// checkpointer retries, as opposed to a broken tree, which stops it.
type signingError struct{ err error }

func (e *signingError) Error() string { return "signing checkpoint: " + e.err.Error() }

// signCheckpoint is the raft entry of a checkpoint of the tree at size,
// signed at t: the checkpoint stage.
func (l *Ledger) signCheckpoint(size uint64, signer TreeHeadSigner, t time.Time) ([]byte, error) {
	defer l.m.checkpoint.Start().Stop()
	root, err := l.tree.Root(int64(size))
	if err != nil {
		return nil, fmt.Errorf("ledger: checkpoint root: %w", err)
	}
	cp, err := signer.SignTreeHead(size, root, t)
	if err != nil {
		return nil, &signingError{err}
	}
	body, err := log.MarshalCheckpoint(cp)
	if err != nil {
		return nil, err
	}
	return log.MarshalBatch(&log.Batch{Proposals: []log.Proposal{{Type: log.TxCheckpoint, Body: body}}})
}

func resetTimer(t *time.Timer, d time.Duration) {
	t.Stop()
	select {
	case <-t.C:
	default:
	}
	t.Reset(d)
}
