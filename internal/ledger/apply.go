package ledger

import (
	"crypto/sha256"
	"fmt"

	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
	"github.com/fxamacker/cbor/v2"
	"golang.org/x/mod/sumdb/tlog"
)

// Entry is a committed raft entry as the ledger applies it. Data is nil for
// raft's own entries (empty leader entries, configuration changes), which
// only advance the applied index.
type Entry struct {
	Index, Term uint64
	Data        []byte
}

// outcome of one registration proposal, delivered to its waiter after commit.
type outcome struct {
	entry [32]byte
	txid  log.TxID
}

// Apply applies committed entries in order, deterministically: every node
// that applies the same entries writes the same records, tree and state.
//
// Crash reasoning: all effects of the entries, the ledger state and the
// applied raft index (plus whatever also writes) go into one atomic batch. A
// crash before it commits leaves the store as before the call; raft then
// hands the same entries again on restart, since they are in its synced log.
// The batch is not synced for the same reason.
func (l *Ledger) Apply(entries []Entry, also func(*store.Batch) error) error {
	if len(entries) == 0 {
		return nil
	}
	b := l.st.NewBatch()
	defer b.Close()
	l.mu.RLock()
	st := l.state
	l.mu.RUnlock()
	startSize := l.tree.Size()
	var done []outcome
	failed := map[[32]byte]error{}
	view := newBatchView(l.st, l.kv)
	wrote := false
	inBatch := map[[32]byte]log.TxID{}
	var checkpointed []checkpointPos
	var indexed [][32]byte // registrations' entries this batch adds to the index
	conflicts := 0         // app transactions refused because their reads changed
	for _, e := range entries {
		if len(e.Data) == 0 {
			continue
		}
		batch, err := log.UnmarshalBatch(e.Data)
		if err != nil {
			// The leader encoded this; a decode failure means a bug or a
			// corrupt log, and applying around it would fork the ledger.
			l.tree.Rollback(startSize)
			return fmt.Errorf("ledger: raft entry %d: %w", e.Index, err)
		}
		for i := range batch.Proposals {
			p := &batch.Proposals[i]
			switch p.Type {
			case log.TxRegistration:
				if txid, ok := inBatch[p.Entry]; ok {
					done = append(done, outcome{p.Entry, txid})
					continue
				}
				if txid, err := l.lookupEntry(p.Entry); err == nil {
					done = append(done, outcome{p.Entry, txid})
					continue
				} else if err != ErrNotFound {
					l.tree.Rollback(startSize)
					return err
				}
				txid, err := l.appendRecord(b, &st, e.Term, p.Type, p.Entry, p.Body, p.Policy)
				if err != nil {
					l.tree.Rollback(startSize)
					return err
				}
				b.PutEntry(p.Entry, txid.View, txid.Seqno)
				indexed = append(indexed, p.Entry)
				inBatch[p.Entry] = txid
				st.LastContentSeqno = txid.Seqno
				done = append(done, outcome{p.Entry, txid})
			case log.TxCheckpoint:
				ok, err := l.applyCheckpoint(b, &st, e.Term, p.Body)
				if err != nil {
					l.tree.Rollback(startSize)
					return err
				}
				if ok {
					checkpointed = append(checkpointed, checkpointPos{st.LastCheckpointSize, st.LastCheckpointSeqno})
				}
			case log.TxWrites:
				key := sha256.Sum256(p.Body)
				ws, err := log.UnmarshalWriteSet(p.Body)
				if err == nil {
					err = ws.Validate()
				}
				if err == nil {
					if m := touchesReserved(ws); m != "" {
						err = fmt.Errorf("writes map %q, which the nodes maintain", m)
					}
				}
				if err != nil {
					// The leader validated it; a node that disagrees skips it
					// (no position) exactly as every other node does.
					l.log.Error("skipping invalid write set", "raft_index", e.Index, "err", err)
					failed[key] = ErrInvalid
					continue
				}
				txid, err := l.appendWrites(b, view, &st, e.Term, p, ws.Writes)
				if err != nil {
					l.tree.Rollback(startSize)
					return err
				}
				done = append(done, outcome{key, txid})
				wrote = true
			case log.TxApp:
				key := sha256.Sum256(p.Body)
				t, err := log.UnmarshalAppTx(p.Body)
				if err == nil {
					err = checkAppTx(t)
				}
				if err != nil {
					l.log.Error("skipping invalid app transaction", "raft_index", e.Index, "err", err)
					failed[key] = ErrInvalid
					continue
				}
				// Deterministic on every node: the same entries in the
				// same order see the same state.
				hold, err := view.readsHold(t)
				if err != nil {
					l.tree.Rollback(startSize)
					return err
				}
				if !hold {
					failed[key] = ErrConflict
					conflicts++
					continue
				}
				txid, err := l.appendWrites(b, view, &st, e.Term, p, t.Writes)
				if err != nil {
					l.tree.Rollback(startSize)
					return err
				}
				done = append(done, outcome{key, txid})
				wrote = true
			case log.TxGenesis:
				if st.Size != 0 {
					l.log.Warn("ignoring a second genesis transaction", "raft_index", e.Index)
					continue
				}
				entry := log.ComputeEntry(p.Type, e.Term, 1, p.Body)
				txid, err := l.appendRecord(b, &st, e.Term, p.Type, entry, p.Body, [32]byte{})
				if err != nil {
					l.tree.Rollback(startSize)
					return err
				}
				st.LastContentSeqno = txid.Seqno
			default:
				l.tree.Rollback(startSize)
				return fmt.Errorf("ledger: raft entry %d: unknown transaction type %d", e.Index, p.Type)
			}
		}
	}
	enc, err := cbor.Marshal(&st)
	if err != nil {
		l.tree.Rollback(startSize)
		return err
	}
	b.PutLedgerState(enc)
	b.SetApplied(entries[len(entries)-1].Index, entries[len(entries)-1].Term)
	if also != nil {
		if err := also(b); err != nil {
			l.tree.Rollback(startSize)
			return err
		}
	}
	if err := b.Commit(false); err != nil {
		l.tree.Rollback(startSize)
		return err
	}
	l.tree.Committed()
	l.kv.written(view)
	for _, cp := range checkpointed {
		l.covering.add(cp.treeSize, cp.seqno)
	}
	for _, e := range indexed {
		l.filter.added(e)
	}
	l.m.appConflicts.Add(float64(conflicts))
	if wrote {
		// After the commit: a reader that sees the new version reads the
		// new maps.
		l.writes.Add(1)
	}
	// Published only now: readers never see state that is not in the store.
	l.mu.Lock()
	l.state = st
	l.appliedTerm = max(l.appliedTerm, entries[len(entries)-1].Term)
	for _, o := range done {
		if w, ok := l.pending[o.entry]; ok {
			delete(l.pending, o.entry)
			w.txid = o.txid
			close(w.done)
		}
	}
	for k, err := range failed {
		if w, ok := l.pending[k]; ok {
			delete(l.pending, k)
			w.err = err
			close(w.done)
		}
	}
	close(l.applied)
	l.applied = make(chan struct{})
	if len(checkpointed) > 0 {
		close(l.covered)
		l.covered = make(chan struct{})
	}
	l.mu.Unlock()
	l.m.applied(st, len(done))
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return nil
}

// appendRecord gives a transaction the next seqno, stores its record and
// appends its leaf.
func (l *Ledger) appendRecord(b *store.Batch, st *State, view uint64, t log.TxType, entry [32]byte, body []byte, policy [32]byte) (log.TxID, error) {
	rec := &log.Record{Type: t, View: view, Seqno: st.Size + 1, Entry: entry, Body: body, Policy: policy}
	enc, err := log.MarshalRecord(rec)
	if err != nil {
		return log.TxID{}, err
	}
	idx, err := l.tree.Append(entry, func(i int64, h tlog.Hash) { b.PutHash(i, h) })
	if err != nil {
		return log.TxID{}, err
	}
	if uint64(idx) != st.Size {
		return log.TxID{}, fmt.Errorf("ledger: tree has %d leaves but the ledger %d transactions", idx, st.Size)
	}
	b.PutRecord(rec.Seqno, enc)
	st.Size++
	return rec.TxID(), nil
}

// applyCheckpoint appends a checkpoint transaction if it is for a new tree
// size and its root is this node's root at that size. A checkpoint that
// fails either test was made by a leader that lost its term and is skipped
// identically on every node; the newer leader makes its own.
func (l *Ledger) applyCheckpoint(b *store.Batch, st *State, view uint64, body []byte) (bool, error) {
	cp, err := log.UnmarshalCheckpoint(body)
	if err != nil {
		return false, fmt.Errorf("ledger: checkpoint: %w", err)
	}
	if cp.TreeSize <= st.LastCheckpointSize || cp.TreeSize > st.Size {
		l.log.Info("skipping stale checkpoint", "tree_size", cp.TreeSize, "last", st.LastCheckpointSize, "size", st.Size)
		return false, nil
	}
	root, err := l.tree.Root(int64(cp.TreeSize))
	if err != nil {
		return false, err
	}
	if root != cp.Root {
		l.log.Error("skipping checkpoint with a root that is not this tree's", "tree_size", cp.TreeSize)
		return false, nil
	}
	entry := log.ComputeEntry(log.TxCheckpoint, view, st.Size+1, body)
	txid, err := l.appendRecord(b, st, view, log.TxCheckpoint, entry, body, [32]byte{})
	if err != nil {
		return false, err
	}
	b.PutCheckpoint(cp.TreeSize, txid.Seqno)
	st.LastCheckpointSize, st.LastCheckpointSeqno = cp.TreeSize, txid.Seqno
	return true, nil
}

// appendWrites gives a key-value transaction (TxWrites, TxApp) the next
// position and applies its writes.
func (l *Ledger) appendWrites(b *store.Batch, view *batchView, st *State, term uint64, p *log.Proposal, writes []log.Write) (log.TxID, error) {
	entry := log.ComputeEntry(p.Type, term, st.Size+1, p.Body)
	txid, err := l.appendRecord(b, st, term, p.Type, entry, p.Body, [32]byte{})
	if err != nil {
		return txid, err
	}
	for _, w := range writes {
		if w.Delete {
			b.DeleteKV(w.Map, w.Key)
		} else {
			b.PutKV(w.Map, w.Key, w.Value)
		}
		view.record(w)
	}
	st.LastContentSeqno = txid.Seqno
	return txid, nil
}

// touchesReserved returns the first map of a write set that the nodes
// maintain themselves (log.WrittenByNodes: public:charter.*), which no
// write set may write, or "".
func touchesReserved(ws *log.WriteSet) string {
	for _, w := range ws.Writes {
		if log.IsNodeMaintained(w.Map) {
			return w.Map
		}
	}
	return ""
}
