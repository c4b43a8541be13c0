package node

import (
	"context"

	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/replication"
)

// replicatedLedger is the ledger as the service API sees it: this node's
// replica, with a read barrier through raft.
type replicatedLedger struct {
	*ledger.Ledger
	raft *replication.Node
}

// The checkpointer signs with the node's identity.
var _ ledger.TreeHeadSigner = (*identity.TreeHeadSigner)(nil)

func (l replicatedLedger) ReadBarrier(ctx context.Context) error { return l.raft.ReadBarrier(ctx) }
