package node

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/registry"
	"go.etcd.io/raft/v3/tracker"
)

const pathJoin = "/node/join"

// headerForwarded marks a request a follower forwarded to the leader, so
// that it is never forwarded twice.
const headerForwarded = "Charter-Forwarded-By"

// leaderOnly are the writes only the leader can do (with every POST under
// /gov/); a follower forwards them.
var leaderOnly = map[string]bool{"/entries": true, pathJoin: true}

// errForwardedTwice answers a request another node forwarded here believing
// this node leads, when it no longer does: forwarding it again could loop.
var errForwardedTwice = &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
	Detail: "leadership moved while the request was forwarded; retry", RetryAfter: 1}

// forwardWrites sends writes that reach a follower (registrations, joins,
// governance) to the leader, over the peers' mutual TLS, and relays the
// answer: a client may write to any node. Reads are served locally from
// this node's committed state.
func (n *Node) forwardWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !(leaderOnly[r.URL.Path] || strings.HasPrefix(r.URL.Path, "/gov/")) || n.transport == nil {
			next.ServeHTTP(w, r)
			return
		}
		if leader, _ := n.raft.Leader(); leader {
			next.ServeHTTP(w, r)
			return
		}
		if r.Header.Get(headerForwarded) != "" && n.trustedPeer(r) {
			// Another node forwarded it here believing this node leads; it
			// no longer does. Forwarding again could loop.
			writeRelayProblem(w, r.URL.Path, errForwardedTwice)
			return
		}
		n.proxyToLeader(w, r)
	})
}

// proxyToLeader relays r to the leader over the peers' mutual TLS and
// relays the answer (relay.go).
func (n *Node) proxyToLeader(w http.ResponseWriter, r *http.Request) {
	id := n.raft.LeaderID()
	u, ok := n.raft.PeerURL(id)
	if id == 0 || !ok {
		writeRelayProblem(w, r.URL.Path, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
			Detail: "no leader is known to this node (no quorum, or an election is under way); retry shortly", RetryAfter: 1})
		return
	}
	target, err := url.Parse(u)
	if err != nil {
		writeRelayProblem(w, r.URL.Path, registry.ProblemFor(err))
		return
	}
	relay(w, r, target, n.peerClientFor(id).Transport, id, n.cfg.NodeID, n.log)
}

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

// getNodes lists the network's nodes with their roles and, on the leader,
// their replication progress.
func (n *Node) getNodes(w http.ResponseWriter, r *http.Request) {
	nodes, err := n.raft.Nodes()
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	st := n.raft.Status()
	type nodeView struct {
		replication.NodeInfo
		Leader bool    `json:"leader"`
		Match  *uint64 `json:"match_index,omitempty"`
		State  string  `json:"replication_state,omitempty"`
	}
	out := []nodeView{}
	for _, info := range nodes {
		v := nodeView{NodeInfo: info, Leader: info.ID == st.Lead}
		if pr, ok := st.Progress[info.ID]; ok {
			m := pr.Match
			v.Match, v.State = &m, pr.State.String()
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
}

// getConsensus reports this node's raft view.
func (n *Node) getConsensus(w http.ResponseWriter, r *http.Request) {
	st := n.raft.Status()
	progress := map[string]any{}
	for id, pr := range st.Progress {
		progress[fmt.Sprint(id)] = map[string]any{"match": pr.Match, "next": pr.Next, "state": pr.State.String(), "learner": pr.IsLearner, "recent_active": pr.RecentActive}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"node_id": n.cfg.NodeID, "leader": st.Lead, "term": st.GetTerm(), "state": st.RaftState.String(),
		"commit_index": st.GetCommit(), "applied_index": n.raft.Applied(), "progress": progress,
	})
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
	_ = n.ledger.ScanKV(gov.MapNodesInfo, func(k, v []byte) error {
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
