package node

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/charterlog/charter/internal/ledgerfiles"
)

// LedgerDir is where a node keeps its ledger as chunk files
// (internal/ledgerfiles): copying it is a backup.
func LedgerDir(dataDir string) string { return filepath.Join(dataDir, "ledger") }

// ledgerSource is the committed ledger the chunk files follow; the ledger
// hands them its newest records from memory, as they were applied.
type ledgerSource struct{ n *Node }

func (s ledgerSource) WaitApplied(ctx context.Context, size uint64) error {
	return s.n.ledger.WaitApplied(ctx, size)
}

func (s ledgerSource) Size() uint64 { return s.n.ledger.State().Size }

func (s ledgerSource) ScanRecords(from, to uint64, fn func(uint64, []byte) error) error {
	return s.n.ledger.ScanRecords(from, to, fn)
}

// writeLedgerFiles appends every committed transaction to the chunk files
// in LedgerDir until ctx ends.
func (n *Node) writeLedgerFiles(ctx context.Context) error {
	w, err := ledgerfiles.OpenWriter(LedgerDir(n.cfg.DataDir), n.cfg.LedgerChunkBytes, n.cfg.LedgerChunkTransactions)
	if err != nil {
		return fmt.Errorf("ledger files: %w", err)
	}
	defer w.Close()
	if err := ledgerfiles.Follow(ctx, w, ledgerSource{n}); err != nil && ctx.Err() == nil {
		return fmt.Errorf("ledger files: %w", err)
	}
	return nil
}
