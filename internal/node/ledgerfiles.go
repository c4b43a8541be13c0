package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/charterlog/charter/internal/ledgerfiles"
	"github.com/charterlog/charter/internal/store"
)

// LedgerDir is where a node keeps its ledger as chunk files
// (internal/ledgerfiles): copying it is a backup.
func LedgerDir(dataDir string) string { return filepath.Join(dataDir, "ledger") }

// ledgerSource is the committed ledger the chunk files follow; the ledger
// hands them its newest records from memory, as they were applied.
type ledgerSource struct{ n *Node }

// WaitApplied waits too, with history incomplete, until transaction size
// is held: the chunk files are written in order from the first
// transaction, and a node that installed a state image writes none of the
// gap until backfill has verified it (rather than write the files from
// backfill, which would make a second writer of the same files).
func (s ledgerSource) WaitApplied(ctx context.Context, size uint64) error {
	if err := s.n.ledger.WaitApplied(ctx, size); err != nil {
		return err
	}
	for {
		changed := s.n.st.HistoryChanged()
		g, incomplete := s.n.st.History()
		if !incomplete || size <= g.Next || size > g.Floor {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

func (s ledgerSource) Size() uint64 { return s.n.ledger.State().Size }

// ScanRecords stops without an error at the first transaction of a
// history gap: the records before it were appended in order, and
// WaitApplied then waits for backfill to reach the next one.
func (s ledgerSource) ScanRecords(from, to uint64, fn func(uint64, []byte) error) error {
	err := s.n.ledger.ScanRecords(from, to, fn)
	if errors.Is(err, store.ErrHistoryIncomplete) {
		return nil
	}
	return err
}

// FilesSynced tells the store how far the files hold the records.
func (s ledgerSource) FilesSynced(seqno uint64) { s.n.st.FilesSynced(seqno) }

// writeLedgerFiles appends every committed transaction to the chunk files
// in LedgerDir until ctx ends.
func (n *Node) writeLedgerFiles(ctx context.Context) error {
	if err := ledgerfiles.Follow(ctx, n.files, ledgerSource{n}); err != nil && ctx.Err() == nil {
		return fmt.Errorf("ledger files: %w", err)
	}
	return nil
}
