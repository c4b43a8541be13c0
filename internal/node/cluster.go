package node

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/registry"
	"go.etcd.io/raft/v3/tracker"
)

const (
	pathJoin   = "/node/join"
	pathRemove = "/node/remove"
)

// headerForwarded marks a request a follower forwarded to the leader, so
// that it is never forwarded twice.
const headerForwarded = "Charter-Forwarded-By"

// leaderOnly are the writes only the leader can do (with every POST under
// /gov/); a follower forwards them.
var leaderOnly = map[string]bool{"/entries": true, pathJoin: true, pathRemove: true}

// forwardWrites sends writes that reach a follower (registrations, joins,
// removals) to the leader, over the peers' mutual TLS, and relays the
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
		if r.Header.Get(headerForwarded) != "" && n.peerVerified(r) {
			// Another node forwarded it here believing this node leads; it
			// no longer does. Forwarding again could loop.
			registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
				Detail: "leadership moved while the request was forwarded; retry", RetryAfter: 1})
			return
		}
		n.proxyToLeader(w, r)
	})
}

// proxyToLeader relays r to the leader over the peers' mutual TLS and
// relays the answer.
func (n *Node) proxyToLeader(w http.ResponseWriter, r *http.Request) {
	id := n.raft.LeaderID()
	u, ok := n.raft.PeerURL(id)
	if id == 0 || !ok {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
			Detail: "no leader is known to this node (no quorum, or an election is under way); retry shortly", RetryAfter: 1})
		return
	}
	target, err := url.Parse(u)
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header.Set(headerForwarded, fmt.Sprint(n.cfg.NodeID))
		},
		Transport: n.peerClient.Transport,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			n.log.Warn("forwarding to the leader failed", "leader", id, "err", err)
			registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
				Detail: "the leader did not answer; retry shortly", RetryAfter: 1})
		},
	}
	proxy.ServeHTTP(w, r)
}

// peerVerified reports whether the TLS client is one of the network's
// nodes: its certificate is issued by the service certificate. (The server
// requests client certificates without verifying them, since app users and
// members present their own.)
func (n *Node) peerVerified(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return false
	}
	leaf := r.TLS.PeerCertificates[0]
	// Peers' certificates are few and reused on every forwarded request;
	// verifying one costs a signature check. Only successes are kept, so
	// the cache holds nothing but the network's own node certificates.
	if until, ok := n.verifiedPeers.Load(string(leaf.Raw)); ok && time.Now().Before(until.(time.Time)) {
		return true
	}
	inter := x509.NewCertPool()
	for _, c := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: n.servicePool(), Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return false
	}
	n.verifiedPeers.Store(string(leaf.Raw), leaf.NotAfter)
	return true
}

type removeRequest struct {
	NodeID uint64 `json:"node_id"`
}

// postRemove removes a node from the network (on the leader). The node's id
// stays recorded as removed and is never given out again.
func (n *Node) postRemove(w http.ResponseWriter, r *http.Request) {
	var req removeRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil || req.NodeID == 0 {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusBadRequest, Title: "InvalidInput", Detail: "want {\"node_id\": N} with N > 0"})
		return
	}
	if leader, _ := n.raft.Leader(); !leader {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "NotLeader",
			Detail: fmt.Sprintf("send the request to the leader (node %d)", n.raft.LeaderID()), RetryAfter: 1})
		return
	}
	info, err := n.raft.NodeInfo(req.NodeID)
	if err != nil || info.Role == replication.RoleRemoved {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusNotFound, Title: "NotFound", Detail: fmt.Sprintf("node %d is not a member of the network", req.NodeID)})
		return
	}
	if req.NodeID == n.cfg.NodeID {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusConflict, Title: "Conflict", Detail: "the leader cannot remove itself; stop it so another node leads, then remove it there"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := n.raft.Remove(ctx, req.NodeID); err != nil {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", Detail: err.Error(), RetryAfter: 1})
		return
	}
	for {
		if info, err := n.raft.NodeInfo(req.NodeID); err == nil && info.Role == replication.RoleRemoved {
			break
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", Detail: "the configuration change did not commit in time; retry", RetryAfter: 1})
			return
		}
	}
	n.log.Info("removed node", "node_id", req.NodeID)
	writeJSON(w, http.StatusOK, removeRequest{NodeID: req.NodeID})
}

// RemoveNode asks the network at target to remove node id, using the
// identity in cfg's data directory to authenticate as one of its nodes.
func RemoveNode(ctx context.Context, cfg config.Config, target string, id uint64) error {
	ident, err := loadOrCreateIdentity(cfg.DataDir, "", false)
	if err != nil {
		return fmt.Errorf("the network's service identity (with the service key: only a node the network trusts holds it) must be in %s: %w", cfg.DataDir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	cert, err := nodeTLSCertificate(ident, key, "127.0.0.1", "")
	if err != nil {
		return err
	}
	client := (&Node{id: ident, tlsCert: cert}).newPeerClient()
	body, _ := json.Marshal(removeRequest{NodeID: id})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(target, "/")+pathRemove, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		p := registry.DecodeProblem(resp.StatusCode, b)
		return fmt.Errorf("%s answered %s: %s: %s", target, resp.Status, p.Title, p.Detail)
	}
	return nil
}

// promoteLearners makes caught-up learners voters, while this node leads. A
// learner is caught up when it has everything the leader had committed a
// moment ago.
func (n *Node) promoteLearners(ctx context.Context) error {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	evidenceTried := map[uint64]time.Time{}
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
		n.recordPeerEvidence(ctx, evidenceTried)
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
	rec, ok := n.nodeRecord(id)
	if ok && rec.Joined {
		return rec.Status == NodeTrusted && rec.SecretsReleased
	}
	if !n.serviceOpen() {
		return true
	}
	return ok && rec.Status == NodeTrusted
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
