package ledger

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/internal/stagetime"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
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
	payload := 0
	for _, e := range entries {
		payload += len(e.Data)
	}
	a := l.startApply(payload)
	defer a.close()
	a.timing = l.m.applying.Begin()
	defer a.timing.Finish(l.m.apply)
	for _, e := range entries {
		if len(e.Data) == 0 {
			continue
		}
		batch, err := log.UnmarshalBatch(e.Data)
		if err != nil {
			// The leader encoded this; a decode failure means a bug or a
			// corrupt log, and applying around it would fork the ledger.
			return fmt.Errorf("ledger: raft entry %d: %w", e.Index, err)
		}
		for i := range batch.Proposals {
			if err := a.proposal(e, &batch.Proposals[i]); err != nil {
				return err
			}
		}
	}
	last := entries[len(entries)-1]
	if err := a.commit(last, also); err != nil {
		return err
	}
	a.publish(last)
	return nil
}

// applying is one Apply call in progress: the batch that takes all its
// effects, the ledger state as they advance it, and what to publish once
// the batch commits (nothing of it is seen before).
type applying struct {
	l *Ledger
	b *store.Batch
	// st is the ledger state after the proposals applied so far.
	st State
	// startSize is the tree's size before the call: the tree goes back to
	// it unless the batch commits.
	startSize int64
	committed bool
	// view is the key-value state as this call has changed it, for app
	// transactions' reads.
	view *batchView
	// inBatch holds the registrations this call appended: a duplicate in
	// the same call is not in the store's index yet.
	inBatch map[[32]byte]log.TxID
	// done and failed are the waiters' answers, by entry (registrations)
	// or body hash (write sets, app transactions).
	done         []outcome
	failed       map[[32]byte]error
	checkpointed []checkpointPos
	indexed      [][32]byte // registrations' entries this batch adds to the index
	// hashes and entryPuts wait for writeIndexes (see there).
	hashes      []storedHash
	entryPuts   []entryPut
	records     [][]byte // the encoded records this call appended, from seqno recordsFrom
	recordsFrom uint64
	conflicts   int  // app transactions refused because their reads changed
	registered  int  // registrations answered, duplicates included
	wrote       bool // a transaction changed the key-value maps
	stubs       bool // registrations are stored as stubs (bodyIn)
	timing      stagetime.Span
}

// startApply begins applying transactions whose encodings total payload
// bytes. Its batch starts at about the size they will take: a
// registration's record holds its statement, beside a few hashes and index
// keys.
func (l *Ledger) startApply(payload int) *applying {
	stubs := l.st.StubsEnabled()
	size := 4<<10 + payload + payload/4
	if stubs {
		// Statements stay out of the batch.
		size = 4<<10 + payload/4
	}
	b := l.applies.Begin(size)
	l.mu.RLock()
	st := l.state
	l.mu.RUnlock()
	return &applying{
		l: l, b: b, st: st, startSize: l.tree.Size(), stubs: stubs,
		view:    newBatchView(l.st, l.kv),
		inBatch: map[[32]byte]log.TxID{},
		failed:  map[[32]byte]error{},
	}
}

// close ends the call. Unless the batch committed, the in-memory tree
// forgets the leaves the call appended: their hashes are in no store, and
// raft hands the same entries again.
func (a *applying) close() {
	if !a.committed {
		a.l.tree.Rollback(a.startSize)
	}
	a.b.Close()
}

// proposal applies one transaction of raft entry e.
func (a *applying) proposal(e Entry, p *log.Proposal) error {
	switch p.Type {
	case log.TxRegistration:
		return a.registration(e, p)
	case log.TxCheckpoint:
		return a.checkpoint(e, p)
	case log.TxWrites:
		return a.writeSet(e, p)
	case log.TxApp:
		return a.appTx(e, p)
	case log.TxGenesis:
		return a.genesis(e, p)
	case log.TxRecovery:
		return a.recovery(e, p)
	default:
		return fmt.Errorf("ledger: raft entry %d: unknown transaction type %d", e.Index, p.Type)
	}
}

// registration appends a registration, or answers it with the position of
// the same entry registered before (in this call or an earlier one).
func (a *applying) registration(e Entry, p *log.Proposal) error {
	a.registered++
	if txid, ok := a.inBatch[p.Entry]; ok {
		a.done = append(a.done, outcome{p.Entry, txid})
		return nil
	}
	if txid, err := a.l.lookupEntry(p.Entry); err == nil {
		a.done = append(a.done, outcome{p.Entry, txid})
		return nil
	} else if err != ErrNotFound {
		return err
	}
	txid, err := a.appendRecord(e.Term, p.Type, p.Entry, p.Body, p.Policy, a.bodyIn(e, p))
	if err != nil {
		return err
	}
	a.putEntry(p.Entry, txid)
	a.inBatch[p.Entry] = txid
	a.st.LastContentSeqno = txid.Seqno
	a.done = append(a.done, outcome{p.Entry, txid})
	return nil
}

// checkpoint appends a checkpoint transaction if it is for a new tree
// size and its root is this node's root at that size. A checkpoint that
// fails either test was made by a leader that lost its term and is skipped
// identically on every node; the newer leader makes its own.
func (a *applying) checkpoint(e Entry, p *log.Proposal) error {
	cp, err := log.UnmarshalCheckpoint(p.Body)
	if err != nil {
		return fmt.Errorf("ledger: checkpoint: %w", err)
	}
	if cp.TreeSize <= a.st.LastCheckpointSize || cp.TreeSize > a.st.Size {
		a.l.log.Info("skipping stale checkpoint", "tree_size", cp.TreeSize, "last", a.st.LastCheckpointSize, "size", a.st.Size)
		return nil
	}
	root, err := a.l.tree.Root(int64(cp.TreeSize))
	if err != nil {
		return err
	}
	if root != cp.Root {
		a.l.log.Error("skipping checkpoint with a root that is not this tree's", "tree_size", cp.TreeSize)
		return nil
	}
	entry := log.ComputeEntry(log.TxCheckpoint, e.Term, a.st.Size+1, p.Body)
	txid, err := a.appendRecord(e.Term, log.TxCheckpoint, entry, p.Body, [32]byte{}, bodyAt{})
	if err != nil {
		return err
	}
	a.b.PutCheckpoint(cp.TreeSize, txid.Seqno)
	a.st.LastCheckpointSize, a.st.LastCheckpointSeqno = cp.TreeSize, txid.Seqno
	a.checkpointed = append(a.checkpointed, checkpointPos{a.st.LastCheckpointSize, a.st.LastCheckpointSeqno})
	return nil
}

// writeSet appends a write set and applies its writes, unless it is
// invalid or writes a map the nodes maintain.
func (a *applying) writeSet(e Entry, p *log.Proposal) error {
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
		// The leader validated it; a node that disagrees skips it (no
		// position) exactly as every other node does.
		a.l.log.Error("skipping invalid write set", "raft_index", e.Index, "err", err)
		a.failed[key] = ErrInvalid
		return nil
	}
	return a.appendWrites(e.Term, p, key, ws.Writes)
}

// appTx appends an app transaction and applies its writes if what it read
// still holds; otherwise it is refused with ErrConflict.
func (a *applying) appTx(e Entry, p *log.Proposal) error {
	key := sha256.Sum256(p.Body)
	t, err := log.UnmarshalAppTx(p.Body)
	if err == nil {
		err = checkAppTx(t)
	}
	if err != nil {
		a.l.log.Error("skipping invalid app transaction", "raft_index", e.Index, "err", err)
		a.failed[key] = ErrInvalid
		return nil
	}
	// Deterministic on every node: the same entries in the same order see
	// the same state.
	hold, err := a.view.readsHold(t)
	if err != nil {
		return err
	}
	if !hold {
		a.failed[key] = ErrConflict
		a.conflicts++
		return nil
	}
	return a.appendWrites(e.Term, p, key, t.Writes)
}

// genesis appends the transaction that creates the network, if the ledger
// is empty.
func (a *applying) genesis(e Entry, p *log.Proposal) error {
	if a.st.Size != 0 {
		a.l.log.Warn("ignoring a second genesis transaction", "raft_index", e.Index)
		return nil
	}
	entry := log.ComputeEntry(p.Type, e.Term, 1, p.Body)
	txid, err := a.appendRecord(e.Term, p.Type, entry, p.Body, [32]byte{}, bodyAt{})
	if err != nil {
		return err
	}
	a.st.LastContentSeqno = txid.Seqno
	return nil
}

// bodyAt is where a record's body is in the raft entry that carried it,
// when the store may keep the record as a stub (store/bodies.go).
type bodyAt struct {
	raftIndex, offset uint64
	ok                bool
}

// bodyIn locates p's body in e's data, from which p was decoded. A
// registration's statement is the largest part of its record and is
// already durable in its raft entry: the store keeps the record's other
// bytes and this locator until the ledger files hold the whole record.
func (a *applying) bodyIn(e Entry, p *log.Proposal) bodyAt {
	body, off := p.Body, p.BodyAt
	if !a.stubs || len(body) == 0 {
		return bodyAt{}
	}
	// The pointer check makes sure the body is where BodyAt says, in
	// these bytes, rather than trust it.
	if off < 0 || off+len(body) > len(e.Data) || &e.Data[off] != &body[0] {
		return bodyAt{}
	}
	return bodyAt{raftIndex: e.Index, offset: uint64(off), ok: true}
}

// recordPolicyBytes is the encoded length of a record's last field, its
// policy digest (a byte string of 32): the body's end is that far from the
// record's.
const recordPolicyBytes = 2 + 32

// appendRecord gives a transaction the next seqno, stores its record (as
// a stub when at locates its body) and appends its leaf.
func (a *applying) appendRecord(view uint64, t log.TxType, entry [32]byte, body []byte, policy [32]byte, at bodyAt) (log.TxID, error) {
	rec := &log.Record{Type: t, View: view, Seqno: a.st.Size + 1, Entry: entry, Body: body, Policy: policy}
	enc, err := log.MarshalRecord(rec)
	if err != nil {
		return log.TxID{}, err
	}
	idx, err := a.l.tree.Append(entry, func(i int64, h tlog.Hash) { a.hashes = append(a.hashes, storedHash{i, h}) })
	if err != nil {
		return log.TxID{}, err
	}
	if uint64(idx) != a.st.Size {
		return log.TxID{}, fmt.Errorf("ledger: tree has %d leaves but the ledger %d transactions", idx, a.st.Size)
	}
	if at.ok {
		a.b.PutRecordStub(rec.Seqno, enc, len(enc)-recordPolicyBytes-len(body), len(body), at.raftIndex, at.offset)
	} else {
		a.b.PutRecord(rec.Seqno, enc)
	}
	if len(a.records) == 0 {
		a.recordsFrom = rec.Seqno
	}
	a.records = append(a.records, enc)
	a.st.Size++
	return rec.TxID(), nil
}

// appendWrites gives a key-value transaction (TxWrites, TxApp) the next
// position and applies its writes; key is its waiter's.
func (a *applying) appendWrites(term uint64, p *log.Proposal, key [32]byte, writes []log.Write) error {
	entry := log.ComputeEntry(p.Type, term, a.st.Size+1, p.Body)
	txid, err := a.appendRecord(term, p.Type, entry, p.Body, [32]byte{}, bodyAt{})
	if err != nil {
		return err
	}
	a.putWrites(writes)
	a.st.LastContentSeqno = txid.Seqno
	a.done = append(a.done, outcome{key, txid})
	a.wrote = true
	return nil
}

type storedHash struct {
	index int64
	hash  tlog.Hash
}

type entryPut struct {
	entry [32]byte
	txid  log.TxID
}

// putEntry indexes a registration's entry (at writeIndexes).
func (a *applying) putEntry(entry [32]byte, txid log.TxID) {
	a.entryPuts = append(a.entryPuts, entryPut{entry, txid})
	a.indexed = append(a.indexed, entry)
}

// writeIndexes puts the tree's stored hashes and the entry index into the
// batch after the records, each family in key order. Pebble inserts a
// batch into its memtable (a skiplist) in the batch's order and starts
// each search from where the last insert went: a key just after the
// previous one is found in a step, a key elsewhere costs a search from the
// top. Interleaved (hash, record, entry per registration) every insert was
// a full search, a tenth of a follower's CPU under load; grouped, records
// and hashes (both in increasing order) cost a step each, and only the
// entries, which are hashes, still search.
func (a *applying) writeIndexes() {
	for _, h := range a.hashes {
		a.b.PutHash(h.index, h.hash)
	}
	slices.SortFunc(a.entryPuts, func(x, y entryPut) int { return bytes.Compare(x.entry[:], y.entry[:]) })
	for _, e := range a.entryPuts {
		a.b.PutEntry(e.entry, e.txid.View, e.txid.Seqno)
	}
	a.hashes, a.entryPuts = a.hashes[:0], a.entryPuts[:0]
}

// commit puts the ledger state and the applied raft index (and whatever
// also writes) into the batch and commits it: the call's one write to the
// store (Apply says what a crash around it leaves).
func (a *applying) commit(last Entry, also func(*store.Batch) error) error {
	enc, err := cbor.Marshal(&a.st)
	if err != nil {
		return err
	}
	a.writeIndexes()
	a.b.PutLedgerState(enc)
	a.b.SetApplied(last.Index, last.Term)
	if also != nil {
		if err := also(a.b); err != nil {
			return err
		}
	}
	if err := a.l.m.committing(&a.timing, func() error { return a.b.Commit(false) }); err != nil {
		return err
	}
	a.committed = true
	return nil
}

// publish makes the committed batch visible: caches, indexes, metrics,
// the state readers see, and the waiters' answers.
func (a *applying) publish(last Entry) {
	l := a.l
	l.tree.Committed()
	l.kv.written(a.view)
	for _, cp := range a.checkpointed {
		l.covering.add(cp.treeSize, cp.seqno)
	}
	for _, e := range a.indexed {
		l.filter.added(e)
	}
	l.recent.add(a.recordsFrom, a.records)
	l.m.appConflicts.Add(float64(a.conflicts))
	if a.wrote {
		// After the commit: a reader that sees the new version reads the
		// new maps.
		l.writes.Add(1)
	}
	// Published only now: readers never see state that is not in the store.
	l.mu.Lock()
	l.state = a.st
	l.appliedTerm = max(l.appliedTerm, last.Term)
	for _, o := range a.done {
		if w, ok := l.pending[o.entry]; ok {
			delete(l.pending, o.entry)
			w.txid = o.txid
			close(w.done)
		}
	}
	for k, err := range a.failed {
		if w, ok := l.pending[k]; ok {
			delete(l.pending, k)
			w.err = err
			close(w.done)
		}
	}
	close(l.applied)
	l.applied = make(chan struct{})
	if len(a.checkpointed) > 0 {
		close(l.covered)
		l.covered = make(chan struct{})
	}
	l.mu.Unlock()
	l.m.applied(a.st, a.registered)
	select {
	case l.kick <- struct{}{}:
	default:
	}
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

// putWrites puts a transaction's writes in the batch and in the view of
// what this batch changed.
func (a *applying) putWrites(writes []log.Write) {
	for _, w := range writes {
		if w.Delete {
			a.b.DeleteKV(w.Map, w.Key)
		} else {
			a.b.PutKV(w.Map, w.Key, w.Value)
		}
		a.view.record(w)
	}
}
