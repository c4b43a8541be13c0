package ledger

import (
	"fmt"

	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
	"golang.org/x/mod/sumdb/tlog"
)

// Record returns the transaction at seqno.
func (l *Ledger) Record(seqno uint64) (*log.Record, error) {
	if seqno == 0 || seqno > l.State().Size {
		return nil, ErrNotFound
	}
	// The newest records are in memory, whole; in the store a
	// registration's is a stub until the ledger files sync it, and reading
	// it back means reading its raft entry (store/bodies.go).
	if _, recs := l.recent.span(seqno, seqno); recs != nil {
		return log.UnmarshalRecord(recs[0])
	}
	raw, err := l.st.Record(seqno)
	if store.IsNotFound(err) {
		return nil, fmt.Errorf("ledger: record %d missing below size %d: %w", seqno, l.State().Size, err)
	}
	if err != nil {
		return nil, err
	}
	return log.UnmarshalRecord(raw)
}

func (l *Ledger) lookupEntry(entry [32]byte) (log.TxID, error) {
	if !l.filter.mayContain(entry) {
		l.m.checkedByFilter.Inc()
		return log.TxID{}, ErrNotFound
	}
	l.m.checkedByStore.Inc()
	view, seq, err := l.st.Entry(entry)
	if store.IsNotFound(err) {
		return log.TxID{}, ErrNotFound
	}
	if err != nil {
		return log.TxID{}, err
	}
	return log.TxID{View: view, Seqno: seq}, nil
}

// LookupEntry returns the transaction id of the registration with this leaf
// entry, or ErrNotFound.
func (l *Ledger) LookupEntry(entry [32]byte) (log.TxID, error) { return l.lookupEntry(entry) }

// TxStatus is a transaction's state as this node knows it (CCF's names).
type TxStatus string

const (
	StatusUnknown   TxStatus = "Unknown"
	StatusPending   TxStatus = "Pending"
	StatusCommitted TxStatus = "Committed"
	StatusInvalid   TxStatus = "Invalid"
)

// Status reports the status of txid: Committed if the ledger holds it,
// Invalid if its position holds a transaction from another view (a
// proposal lost in a leader change), Unknown otherwise.
func (l *Ledger) Status(txid log.TxID) (TxStatus, error) {
	if txid.Seqno > l.State().Size {
		return StatusUnknown, nil
	}
	rec, err := l.Record(txid.Seqno)
	if err != nil {
		return "", err
	}
	if rec.View != txid.View {
		return StatusInvalid, nil
	}
	return StatusCommitted, nil
}

// Inclusion is everything a receipt needs for one transaction: the first
// checkpoint that covers it and the audit path up to that checkpoint's root.
type Inclusion struct {
	Seqno uint64
	// Record is the transaction; nil from Proof.
	Record     *log.Record
	Checkpoint *log.Checkpoint
	LeafIndex  uint64
	Path       [][]byte
}

// Inclusion returns the receipt material for seqno, or ErrNotCovered if no
// checkpoint covers it yet. The first covering checkpoint is used, so a
// transaction's receipt is the same every time it is asked for.
func (l *Ledger) Inclusion(seqno uint64) (*Inclusion, error) {
	rec, err := l.Record(seqno)
	if err != nil {
		return nil, err
	}
	inc, err := l.Proof(seqno)
	if err != nil {
		return nil, err
	}
	inc.Record = rec
	return inc, nil
}

// Proof is Inclusion without the record, for callers that have it.
func (l *Ledger) Proof(seqno uint64) (*Inclusion, error) {
	if seqno == 0 || seqno > l.State().Size {
		return nil, ErrNotFound
	}
	if l.State().LastCheckpointSize < seqno {
		return nil, ErrNotCovered
	}
	_, cpSeq, ok := l.covering.find(seqno)
	if !ok {
		var err error
		_, cpSeq, err = l.st.CheckpointCovering(seqno)
		if store.IsNotFound(err) {
			return nil, ErrNotCovered
		}
		if err != nil {
			return nil, err
		}
	}
	cp, err := l.checkpointBySeqno(cpSeq)
	if err != nil {
		return nil, err
	}
	path, err := l.tree.InclusionProof(int64(cp.TreeSize), int64(seqno-1))
	if err != nil {
		return nil, err
	}
	return &Inclusion{Seqno: seqno, Checkpoint: cp, LeafIndex: seqno - 1, Path: path}, nil
}

func (l *Ledger) checkpointBySeqno(seqno uint64) (*log.Checkpoint, error) {
	if cp, ok := l.checkpoints.get(seqno); ok {
		return cp, nil
	}
	cp, err := l.readCheckpoint(seqno)
	if err != nil {
		return nil, err
	}
	l.checkpoints.put(seqno, cp)
	return cp, nil
}

func (l *Ledger) readCheckpoint(seqno uint64) (*log.Checkpoint, error) {
	raw, err := l.st.Record(seqno)
	if err != nil {
		return nil, fmt.Errorf("ledger: checkpoint record %d: %w", seqno, err)
	}
	rec, err := log.UnmarshalRecord(raw)
	if err != nil {
		return nil, err
	}
	if rec.Type != log.TxCheckpoint {
		return nil, fmt.Errorf("ledger: record %d is a %v, not a checkpoint", seqno, rec.Type)
	}
	return log.UnmarshalCheckpoint(rec.Body)
}

// LatestCheckpoint returns the newest checkpoint, or ErrNotFound.
func (l *Ledger) LatestCheckpoint() (*log.Checkpoint, error) {
	st := l.State()
	if st.LastCheckpointSeqno == 0 {
		return nil, ErrNotFound
	}
	return l.checkpointBySeqno(st.LastCheckpointSeqno)
}

// CheckpointAt returns the checkpoint of exactly treeSize, or ErrNotFound.
func (l *Ledger) CheckpointAt(treeSize uint64) (*log.Checkpoint, error) {
	seq, err := l.st.CheckpointAt(treeSize)
	if store.IsNotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return l.checkpointBySeqno(seq)
}

// Consistency returns the checkpoint of size2 and the RFC 9162 consistency
// proof from size1 to it.
func (l *Ledger) Consistency(size1, size2 uint64) (*log.Checkpoint, [][]byte, error) {
	cp, err := l.CheckpointAt(size2)
	if err != nil {
		return nil, nil, err
	}
	path, err := l.tree.ConsistencyProof(int64(size1), int64(size2))
	if err != nil {
		return nil, nil, err
	}
	return cp, path, nil
}

// LeafEntries returns the leaf entries of the n leaves from leaf index
// start (seqnos start+1 to start+n), which must all be applied.
func (l *Ledger) LeafEntries(start uint64, n int) ([][32]byte, error) {
	if n < 0 || start+uint64(n) > l.State().Size {
		return nil, fmt.Errorf("ledger: leaves %d to %d are not all applied", start, start+uint64(n))
	}
	out := make([][32]byte, 0, n)
	if n == 0 {
		return out, nil
	}
	err := l.st.ScanRecords(start+1, start+uint64(n), func(_ uint64, raw []byte) error {
		rec, err := log.UnmarshalRecord(raw)
		if err != nil {
			return err
		}
		out = append(out, rec.Entry)
		return nil
	})
	return out, err
}

// ReadTile returns a C2SP tile of the Merkle tree (log.Tree.ReadTile).
func (l *Ledger) ReadTile(t tlog.Tile) ([]byte, error) { return l.tree.ReadTile(t) }
