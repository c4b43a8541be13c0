package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/registry"
)

// headerForwarded marks a request a follower forwarded to the leader, so
// that it is never forwarded twice.
const headerForwarded = "Charter-Forwarded-By"

// headerLeader, on an answer a follower relays, is the leader's base URL
// (client.HeaderLeader).
const headerLeader = "Charter-Leader"

// leaderOnly are the writes only the leader can do (with every POST under
// /gov/); a follower forwards them.
var leaderOnly = map[string]bool{"/entries": true, registry.BatchPath: true, join.Path: true}

// forwardWrites sends writes that reach a follower (registrations, joins,
// governance) to the leader, over the peers' mutual TLS, and relays the
// answer: a client may write to any node. Reads are served locally from
// this node's committed state.
func (s *Server) forwardWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !(leaderOnly[r.URL.Path] || strings.HasPrefix(r.URL.Path, "/gov/")) || !s.cfg.Forward {
			next.ServeHTTP(w, r)
			return
		}
		if leader, _ := s.cfg.Raft.Leader(); leader {
			next.ServeHTTP(w, r)
			return
		}
		if r.Header.Get(headerForwarded) != "" && s.trustedPeer(r) {
			// Another node forwarded it here believing this node leads; it
			// no longer does. Forwarding again could loop.
			writeRelayProblem(w, r.URL.Path, errForwardedTwice)
			return
		}
		// /gov/ack/update_state_digest may be authenticated by the client
		// certificate alone, which the leader cannot see.
		s.passClientCert(r)
		s.proxyToLeader(w, r)
	})
}

// proxyToLeader relays r to the leader over the peers' mutual TLS and
// relays the answer (relay.go).
func (s *Server) proxyToLeader(w http.ResponseWriter, r *http.Request) {
	id := s.cfg.Raft.LeaderID()
	u, ok := s.cfg.Raft.PeerURL(id)
	if id == 0 || !ok {
		writeRelayProblem(w, r.URL.Path, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
			Detail: "no leader is known to this node (no quorum, or an election is under way); retry shortly", RetryAfter: 1})
		return
	}
	target, err := url.Parse(u)
	if err != nil {
		writeRelayProblem(w, r.URL.Path, problemFor(err))
		return
	}
	// The answer names the leader at its recorded URL, which clients can
	// reach, not at this node's dial override for it.
	named, _ := s.cfg.Raft.RecordedURL(id)
	relay(w, r, target, named, s.cfg.PeerClient(id).Transport, id, s.cfg.NodeID, s.cfg.Log)
}

// getConsensus reports this node's raft view.
func (s *Server) getConsensus(w http.ResponseWriter, r *http.Request) {
	st := s.cfg.Raft.Status()
	progress := map[string]any{}
	for id, pr := range st.Progress {
		progress[fmt.Sprint(id)] = map[string]any{"match": pr.Match, "next": pr.Next, "state": pr.State.String(), "learner": pr.IsLearner, "recent_active": pr.RecentActive}
	}
	// The network's nodes as the ledger records them (public:charter.nodes):
	// the addresses a node dials its peers at after a restart.
	nodes, err := s.cfg.Raft.Nodes()
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"node_id": s.cfg.NodeID, "leader": st.Lead, "term": st.GetTerm(), "state": st.RaftState.String(),
		"commit_index": st.GetCommit(), "applied_index": s.cfg.Raft.Applied(), "progress": progress,
		"nodes": nodes,
	})
}
