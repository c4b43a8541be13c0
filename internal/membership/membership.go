// Package membership owns the leader's upkeep of raft's membership from
// the ledger's node records (public:ccf.gov.nodes.info): promoting
// caught-up learners that may vote, and taking out of the configuration
// the nodes governance retired. It speaks no HTTP and knows nothing of
// the node: the node hands it raft and the ledger through interfaces.
package membership

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"time"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/join"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// Raft is the raft membership the leader changes (replication.Node).
type Raft interface {
	Leader() (bool, uint64)
	Status() raft.Status
	Promote(ctx context.Context, id uint64) error
	Remove(ctx context.Context, id uint64) error
}

// Keeper keeps raft's membership while this node leads.
type Keeper struct {
	NodeID uint64
	Raft   Raft
	// Ledger holds the node records (the applied state).
	Ledger join.State
	Log    *slog.Logger
}

// Run makes caught-up learners voters, while this node leads. A
// learner is caught up when it has everything the leader had committed a
// moment ago.
func (n *Keeper) Run(ctx context.Context) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if leader, _ := n.Raft.Leader(); !leader {
			continue
		}
		n.retireNodes(ctx)
		st := n.Raft.Status()
		for id, pr := range st.Progress {
			if !pr.IsLearner || pr.State != tracker.StateReplicate || pr.Match+64 < st.GetCommit() {
				continue
			}
			if !n.mayVote(id) {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := n.Raft.Promote(pctx, id)
			cancel()
			if err != nil {
				n.Log.Warn("promoting learner failed", "node_id", id, "err", err)
				continue
			}
			n.Log.Info("promoting caught-up learner to voter", "node_id", id, "match", pr.Match, "commit", st.GetCommit())
		}
	}
}

// mayVote reports whether a caught-up learner may become a voter. A node
// that joined by attestation votes only once the ledger records that it was
// given the service's secrets (so that, as leader, it can sign
// checkpoints). Otherwise: at once while the service is opening, and once
// governance has trusted it (transition_node_to_trusted) after the service
// opened. An operator who can start a node cannot by that alone change who
// votes.
func (n *Keeper) mayVote(id uint64) bool {
	rec, ok := join.RecordOf(n.Ledger, id)
	if ok && rec.Joined {
		return rec.Status == join.NodeTrusted && rec.SecretsReleased
	}
	if !join.ServiceOpen(n.Ledger) {
		return true
	}
	return ok && rec.Status == join.NodeTrusted
}

// retireNodes carries out governance's remove_node: a node that
// public:ccf.gov.nodes.info marks Retired is taken out of the raft
// configuration by the leader (never the leader itself: it steps down
// first, and the next leader removes it).
func (n *Keeper) retireNodes(ctx context.Context) {
	conf := n.Raft.Status().Config
	_ = n.Ledger.ScanKV(govwire.MapNodesInfo, func(k, v []byte) error {
		var info struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(v, &info) != nil || info.Status != "Retired" {
			return nil
		}
		id, err := strconv.ParseUint(string(k), 10, 64)
		if err != nil || id == n.NodeID {
			return nil
		}
		if _, voter := conf.Voters.IDs()[id]; !voter {
			if _, learner := conf.Learners[id]; !learner {
				return nil
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := n.Raft.Remove(rctx, id); err != nil {
			n.Log.Warn("removing a node retired by governance failed", "node_id", id, "err", err)
		} else {
			n.Log.Info("removing node retired by governance", "node_id", id)
		}
		return nil
	})
}
