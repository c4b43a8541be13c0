package ledger

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/log"
)

// ErrImport reports a record that cannot continue the ledger being
// imported: not the next seqno, not canonical, or not what applying it
// would make.
var ErrImport = errors.New("ledger: import")

// SubmitRecovery proposes the recovery transaction (log.TxRecovery) of a
// service recovered from a previous network's ledger and returns its
// transaction id once applied. It is refused (ErrInvalid) unless it
// directly follows the imported ledger.
func (l *Ledger) SubmitRecovery(ctx context.Context, r *log.Recovery) (log.TxID, error) {
	body, err := log.MarshalRecovery(r)
	if err != nil {
		return log.TxID{}, err
	}
	return l.submit(ctx, log.TxRecovery, body)
}

// recovery applies a recovery transaction: it must be the next transaction
// after the ledger it recovers (PreviousSize), so that a recovery proposed
// twice, or over a ledger that grew since, is skipped identically on every
// node. Its writes apply with it, and the nodes' map of recoveries
// (log.MapRecoveries) gains its body.
func (a *applying) recovery(e Entry, p *log.Proposal) error {
	key := sha256.Sum256(p.Body)
	r, err := log.UnmarshalRecovery(p.Body)
	if err == nil && r.PreviousSize != a.st.Size {
		err = fmt.Errorf("it recovers a ledger of %d transactions, this one has %d", r.PreviousSize, a.st.Size)
	}
	if err == nil {
		for _, w := range r.Writes {
			if log.IsNodeMaintained(w.Map) {
				err = fmt.Errorf("it writes map %q, which the nodes maintain", w.Map)
				break
			}
		}
	}
	if err != nil {
		a.l.log.Error("skipping invalid recovery transaction", "raft_index", e.Index, "err", err)
		a.failed[key] = ErrInvalid
		return nil
	}
	if err := a.appendWrites(e.Term, p, key, r.Writes); err != nil {
		return err
	}
	a.putRecovery(a.st.Size, p.Body)
	return nil
}

// putRecovery records a recovery (its seqno and body) in log.MapRecoveries.
func (a *applying) putRecovery(seqno uint64, body []byte) {
	k := binary.BigEndian.AppendUint64(nil, seqno)
	a.b.PutKV(log.MapRecoveries, k, body)
	a.view.record(log.Write{Map: log.MapRecoveries, Key: k, Value: body})
}

// Recoveries returns every recovery of the service, oldest first, with the
// seqno of its transaction.
func (l *Ledger) Recoveries() ([]RecoveryAt, error) {
	var out []RecoveryAt
	err := l.st.ScanKV(log.MapRecoveries, func(k, v []byte) error {
		if len(k) != 8 {
			return fmt.Errorf("ledger: %s: a key of %d bytes", log.MapRecoveries, len(k))
		}
		r, err := log.UnmarshalRecovery(v)
		if err != nil {
			return err
		}
		out = append(out, RecoveryAt{Seqno: binary.BigEndian.Uint64(k), Recovery: r})
		return nil
	})
	return out, err
}

// RecoveryAt is a recovery and the seqno of its transaction.
type RecoveryAt struct {
	Seqno    uint64
	Recovery *log.Recovery
}

// Import appends records of a previous network's ledger verbatim (their
// stored bytes, views, seqnos and leaf entries unchanged), so the tree,
// positions and receipts continue; it applies each one's effects as Apply
// did when the record was first made (the registration index, checkpoints,
// key-value writes, private values as the ciphertext they are). The caller
// has verified the records (internal/ledgerverify); Import checks again
// that each is the next seqno, canonical, and that every checkpoint signs
// this tree's root.
//
// All of one call's records go into one batch, synced only if sync: the
// importer (internal/node) imports into a staging store and syncs its last
// call, so a crash mid-import leaves a staging store that is discarded.
// The raft applied index is not touched: the new network's raft log starts
// empty over the imported prefix.
func (l *Ledger) Import(raws [][]byte, sync bool) error {
	if len(raws) == 0 {
		return nil
	}
	payload := 0
	for _, raw := range raws {
		payload += len(raw)
	}
	a := l.startApply(payload)
	defer a.close()
	for _, raw := range raws {
		if err := a.importRecord(raw); err != nil {
			return err
		}
	}
	enc, err := cbor.Marshal(&a.st)
	if err != nil {
		return err
	}
	a.writeIndexes()
	a.b.PutLedgerState(enc)
	if err := a.b.Commit(sync); err != nil {
		return err
	}
	a.committed = true
	a.publish(Entry{})
	return nil
}

func (a *applying) importRecord(raw []byte) error {
	rec, err := log.UnmarshalRecord(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrImport, err)
	}
	if rec.Seqno != a.st.Size+1 {
		return fmt.Errorf("%w: transaction %d where %d belongs", ErrImport, rec.Seqno, a.st.Size+1)
	}
	var writes []log.Write
	switch rec.Type {
	case log.TxGenesis, log.TxRegistration:
	case log.TxCheckpoint:
		cp, err := log.UnmarshalCheckpoint(rec.Body)
		if err != nil {
			return fmt.Errorf("%w: transaction %d: %v", ErrImport, rec.Seqno, err)
		}
		if cp.TreeSize <= a.st.LastCheckpointSize || cp.TreeSize > a.st.Size {
			return fmt.Errorf("%w: transaction %d signs tree size %d, not after %d and within %d", ErrImport, rec.Seqno, cp.TreeSize, a.st.LastCheckpointSize, a.st.Size)
		}
		root, err := a.l.tree.Root(int64(cp.TreeSize))
		if err != nil {
			return err
		}
		if root != cp.Root {
			return fmt.Errorf("%w: transaction %d signs a root that is not this tree's at %d", ErrImport, rec.Seqno, cp.TreeSize)
		}
	case log.TxWrites:
		ws, err := log.UnmarshalWriteSet(rec.Body)
		if err != nil {
			return fmt.Errorf("%w: transaction %d: %v", ErrImport, rec.Seqno, err)
		}
		writes = ws.Writes
	case log.TxApp:
		t, err := log.UnmarshalAppTx(rec.Body)
		if err != nil {
			return fmt.Errorf("%w: transaction %d: %v", ErrImport, rec.Seqno, err)
		}
		writes = t.Writes
	case log.TxRecovery:
		r, err := log.UnmarshalRecovery(rec.Body)
		if err != nil {
			return fmt.Errorf("%w: transaction %d: %v", ErrImport, rec.Seqno, err)
		}
		writes = r.Writes
	default:
		return fmt.Errorf("%w: transaction %d has unknown type %v", ErrImport, rec.Seqno, rec.Type)
	}
	for _, w := range writes {
		if log.IsNodeMaintained(w.Map) {
			return fmt.Errorf("%w: transaction %d writes map %q, which the nodes maintain", ErrImport, rec.Seqno, w.Map)
		}
	}
	txid, err := a.appendRecord(rec.View, rec.Type, rec.Entry, rec.Body, rec.Policy, bodyAt{})
	if err != nil {
		return err
	}
	// The record as this ledger stores it must be the imported bytes: a
	// non-canonical encoding would make the files and the store disagree.
	enc, err := log.MarshalRecord(rec)
	if err != nil {
		return err
	}
	if !bytes.Equal(enc, raw) {
		return fmt.Errorf("%w: transaction %d is not canonically encoded", ErrImport, rec.Seqno)
	}
	switch rec.Type {
	case log.TxRegistration:
		a.putEntry(rec.Entry, txid)
	case log.TxCheckpoint:
		cp, _ := log.UnmarshalCheckpoint(rec.Body)
		a.b.PutCheckpoint(cp.TreeSize, txid.Seqno)
		a.st.LastCheckpointSize, a.st.LastCheckpointSeqno = cp.TreeSize, txid.Seqno
		a.checkpointed = append(a.checkpointed, checkpointPos{cp.TreeSize, txid.Seqno})
	case log.TxRecovery:
		a.putRecovery(txid.Seqno, rec.Body)
	}
	a.putWrites(writes)
	if len(writes) > 0 {
		a.wrote = true
	}
	if rec.Type != log.TxCheckpoint {
		a.st.LastContentSeqno = txid.Seqno
	}
	return nil
}
