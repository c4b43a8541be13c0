package node

import (
	"context"
	"encoding/json"
	"strconv"
	"time"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/join"
	"go.etcd.io/raft/v3/tracker"
)

// promoteLearners makes caught-up learners voters, while this node leads. A
// learner is caught up when it has everything the leader had committed a
// moment ago.
func (n *Node) promoteLearners(ctx context.Context) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if leader, _ := n.raft.Leader(); !leader {
			continue
		}
		n.retireNodes(ctx)
		st := n.raft.Status()
		for id, pr := range st.Progress {
			if !pr.IsLearner || pr.State != tracker.StateReplicate || pr.Match+64 < st.GetCommit() {
				continue
			}
			if !n.mayVote(id) {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := n.raft.Promote(pctx, id)
			cancel()
			if err != nil {
				n.log.Warn("promoting learner failed", "node_id", id, "err", err)
				continue
			}
			n.log.Info("promoting caught-up learner to voter", "node_id", id, "match", pr.Match, "commit", st.GetCommit())
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
func (n *Node) mayVote(id uint64) bool {
	rec, ok := join.RecordOf(n.ledger, id)
	if ok && rec.Joined {
		return rec.Status == join.NodeTrusted && rec.SecretsReleased
	}
	if !join.ServiceOpen(n.ledger) {
		return true
	}
	return ok && rec.Status == join.NodeTrusted
}

// retireNodes carries out governance's remove_node: a node that
// public:ccf.gov.nodes.info marks Retired is taken out of the raft
// configuration by the leader (never the leader itself: it steps down
// first, and the next leader removes it).
func (n *Node) retireNodes(ctx context.Context) {
	conf := n.raft.Status().Config
	_ = n.ledger.ScanKV(govwire.MapNodesInfo, func(k, v []byte) error {
		var info struct {
			Status string `json:"status"`
		}
		if json.Unmarshal(v, &info) != nil || info.Status != "Retired" {
			return nil
		}
		id, err := strconv.ParseUint(string(k), 10, 64)
		if err != nil || id == n.cfg.NodeID {
			return nil
		}
		if _, voter := conf.Voters.IDs()[id]; !voter {
			if _, learner := conf.Learners[id]; !learner {
				return nil
			}
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := n.raft.Remove(rctx, id); err != nil {
			n.log.Warn("removing a node retired by governance failed", "node_id", id, "err", err)
		} else {
			n.log.Info("removing node retired by governance", "node_id", id)
		}
		return nil
	})
}
