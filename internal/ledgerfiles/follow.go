package ledgerfiles

import (
	"context"
	"time"
)

// A Source is the committed ledger the files follow: the node's ledger
// (WaitApplied, Size) over its store (ScanRecords).
type Source interface {
	// WaitApplied blocks until the ledger holds at least size transactions.
	WaitApplied(ctx context.Context, size uint64) error
	// Size is how many transactions the ledger holds.
	Size() uint64
	// ScanRecords calls fn with the stored record of each seqno from from
	// to to, in order.
	ScanRecords(from, to uint64, fn func(seqno uint64, raw []byte) error) error
	// FilesSynced is told, after each sync, that the files hold every
	// record up to seqno durably (the store may then read them from the
	// files and let the raft log go: store/bodies.go).
	FilesSynced(seqno uint64)
}

// syncEvery bounds how long appended records wait for an fsync while the
// ledger keeps growing: the files trail the store by at most about this.
const syncEvery = 200 * time.Millisecond

// Follow appends each transaction the source commits to w, in order, until
// ctx ends. The files trail the store: a crash loses only what the store
// still has, and the next Follow writes it again from w.Next(). While the
// ledger grows, the appended records are synced every syncEvery, not at
// every batch: the files trail the store by at most about that much, and
// as soon as the ledger stops growing they are synced.
func Follow(ctx context.Context, w *Writer, src Source) error {
	lastSync := time.Now()
	for {
		if err := src.WaitApplied(ctx, w.Next()); err != nil {
			if ctx.Err() != nil {
				return syncAndTell(w, src)
			}
			return err
		}
		to := src.Size()
		if to < w.Next() {
			continue
		}
		if err := src.ScanRecords(w.Next(), to, w.Append); err != nil {
			return err
		}
		src.FilesSynced(w.Synced()) // a chunk completed on the way is synced
		if due := syncEvery - time.Since(lastSync); due > 0 {
			// Caught up and the sync not yet due: wait for more until it
			// is, and sync now if none comes (the ledger went quiet).
			wctx, cancel := context.WithTimeout(ctx, due)
			err := src.WaitApplied(wctx, w.Next())
			cancel()
			if err == nil {
				continue
			}
			if ctx.Err() != nil {
				return syncAndTell(w, src)
			}
		}
		if err := syncAndTell(w, src); err != nil {
			return err
		}
		lastSync = time.Now()
	}
}

// syncAndTell syncs w and tells src how far the files hold.
func syncAndTell(w *Writer, src Source) error {
	if err := w.Sync(); err != nil {
		return err
	}
	src.FilesSynced(w.Synced())
	return nil
}
