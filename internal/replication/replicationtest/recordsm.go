// Package replicationtest holds what tests of replicated nodes share: a
// state machine that stores entries as the ledger does. Package
// replication's scripted harness and package peer's cluster harness (real
// Nodes over the HTTP transport) both run Nodes over it.
package replicationtest

import (
	"crypto/sha256"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
	"golang.org/x/mod/sumdb/tlog"
)

// RecordSM appends each normal entry to a ledger as the ledger package
// does (a record at the next seqno, its stored hashes, its entry in the
// index), with the applied position, in one batch: snapshot images are
// then the ledger's, whole or relative to a follower's prefix.
type RecordSM struct {
	st   *store.Store
	size int64
}

// NewRecordSM returns the state machine over st. Call Restore before
// replication.Start, as a node restores its ledger.
func NewRecordSM(st *store.Store) *RecordSM { return &RecordSM{st: st} }

// Apply implements replication.StateMachine.
func (m *RecordSM) Apply(entries []ledger.Entry, also func(*store.Batch) error) error {
	b := m.st.NewBatch()
	defer b.Close()
	pending := map[int64]tlog.Hash{}
	read := tlog.HashReaderFunc(func(ix []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(ix))
		for i, x := range ix {
			h, ok := pending[x]
			if !ok {
				hs, err := m.st.ReadHashes([]int64{x})
				if err != nil {
					return nil, err
				}
				h = hs[0]
			}
			out[i] = h
		}
		return out, nil
	})
	size := m.size
	for _, e := range entries {
		if len(e.Data) == 0 {
			continue
		}
		rec := &log.Record{Type: log.TxRegistration, View: e.Term, Seqno: uint64(size + 1), Entry: sha256.Sum256(e.Data), Body: e.Data}
		enc, err := log.MarshalRecord(rec)
		if err != nil {
			return err
		}
		hs, err := tlog.StoredHashesForRecordHash(size, tlog.RecordHash(rec.Entry[:]), read)
		if err != nil {
			return err
		}
		for i, h := range hs {
			pending[tlog.StoredHashIndex(0, size)+int64(i)] = h
			b.PutHash(tlog.StoredHashIndex(0, size)+int64(i), h)
		}
		b.PutRecord(rec.Seqno, enc)
		b.PutEntry(rec.Entry, rec.View, rec.Seqno)
		size++
	}
	if also != nil {
		if err := also(b); err != nil {
			return err
		}
	}
	last := entries[len(entries)-1]
	b.SetApplied(last.Index, last.Term)
	if err := b.Commit(false); err != nil {
		return err
	}
	m.size = size
	return nil
}

// Restore reloads the ledger's size from the store.
func (m *RecordSM) Restore() error {
	base, err := m.st.LedgerBase()
	m.size = int64(base.Size)
	return err
}
