package httpapi

// CCF's node endpoints in CCF's shapes (CCF's node_openapi.json: GetVersion,
// GetNetworkInfo, GetNodes, GetNode__NodeInfo, GetCommit, GetState, and the
// /node/primary and /node/backup probes), with Charter's own fields kept
// beside CCF's where Charter's clients read them. All are public, as CCF's
// node frontend is ("public, uncredentialed access to service and node
// state"): they tell what the ledger and raft already publish to peers.

import (
	"cmp"
	"crypto/x509"
	"errors"
	"github.com/charterlog/charter/internal/govwire"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
)

// selfID is this node's CCF id ("" without a node key, in tests).
func (s *Server) selfID() string {
	if s.cfg.NodeKey == nil {
		return ""
	}
	der, err := x509.MarshalPKIXPublicKey(s.cfg.NodeKey)
	if err != nil {
		return ""
	}
	return govwire.NodeID(der)
}

// getVersion is CCF's GET /node/version. Charter is not CCF: ccf_version
// names Charter and its build, quickjs_version the JavaScript engine that
// stands in for QuickJS (sobek), so that a client that prints them prints
// the truth. unsafe is CCF's flag for an unsafe (debug) build: Charter
// has none.
func (s *Server) getVersion(w http.ResponseWriter, r *http.Request) {
	version, engine := "charter-devel", "sobek"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			version = "charter-" + v
		}
		for _, d := range bi.Deps {
			if strings.HasSuffix(d.Path, "/sobek") {
				engine = "sobek-" + d.Version
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ccf_version": version, "quickjs_version": engine, "unsafe": false})
}

// rpcInterface is CCF's NodeInfoNetwork_v2::NetInterface, as far as
// Charter knows it: a node's only interface is the address in its URL
// (Charter records no separate bind address, so both name it).
type rpcInterface struct {
	BindAddress      string `json:"bind_address"`
	PublishedAddress string `json:"published_address"`
}

// primaryRPCInterface is CCF's name of a node's first interface.
const primaryRPCInterface = "primary_rpc_interface"

// nodeView is one node in /node/network/nodes: CCF's GetNode::NodeInfo
// (node_id, status, primary, rpc_interfaces, node_data), then Charter's
// own (raft_id, url, role, and the leader's replication progress).
type nodeView struct {
	NodeID        string                  `json:"node_id"`
	Status        string                  `json:"status"`
	Primary       bool                    `json:"primary"`
	RPCInterfaces map[string]rpcInterface `json:"rpc_interfaces"`
	// NodeData is null: Charter's nodes carry no operator data.
	NodeData any `json:"node_data"`

	RaftID    uint64  `json:"raft_id"`
	URL       string  `json:"url,omitempty"`
	Role      string  `json:"role,omitempty"`
	Match     *uint64 `json:"match_index,omitempty"`
	ReplState string  `json:"replication_state,omitempty"`
}

// nodeViews is every node the ledger records (retired ones included, as
// CCF lists them) and every node in raft's configuration, by raft id.
func (s *Server) nodeViews() ([]nodeView, error) {
	members, err := s.cfg.Raft.Nodes()
	if err != nil {
		return nil, err
	}
	records, err := join.Records(s.cfg.Ledger)
	if err != nil {
		return nil, err
	}
	st := s.cfg.Raft.Status()
	views := map[uint64]*nodeView{}
	view := func(id uint64) *nodeView {
		v, ok := views[id]
		if !ok {
			v = &nodeView{RaftID: id, Status: join.NodePending, RPCInterfaces: map[string]rpcInterface{}, Primary: id == st.Lead}
			views[id] = v
		}
		return v
	}
	setURL := func(v *nodeView, u string) {
		if u == "" {
			return
		}
		v.URL = u
		if p, err := url.Parse(u); err == nil && p.Host != "" {
			v.RPCInterfaces[primaryRPCInterface] = rpcInterface{BindAddress: p.Host, PublishedAddress: p.Host}
		}
	}
	for id, rec := range records {
		v := view(id)
		v.NodeID, v.Status = govwire.NodeIDOfPEM(rec.PublicKey), rec.Status
		setURL(v, rec.URL)
	}
	for _, m := range members {
		v := view(m.ID)
		v.Role = m.Role
		setURL(v, m.URL)
		if pr, ok := st.Progress[m.ID]; ok {
			match := pr.Match
			v.Match, v.ReplState = &match, pr.State.String()
		}
	}
	out := make([]nodeView, 0, len(views))
	for _, v := range views {
		out = append(out, *v)
	}
	slices.SortFunc(out, func(a, b nodeView) int { return cmp.Compare(a.RaftID, b.RaftID) })
	return out, nil
}

// getNodes is CCF's GET /node/network/nodes, with CCF's filters: status,
// and host and port of a node's published address.
func (s *Server) getNodes(w http.ResponseWriter, r *http.Request) {
	all, err := s.nodeViews()
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	q := r.URL.Query()
	status, host, port := q.Get("status"), q.Get("host"), q.Get("port")
	out := []nodeView{}
	for _, v := range all {
		if status != "" && v.Status != status {
			continue
		}
		if host != "" || port != "" {
			h, p, _ := strings.Cut(v.RPCInterfaces[primaryRPCInterface].PublishedAddress, ":")
			if (host != "" && h != host) || (port != "" && p != port) {
				continue
			}
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"nodes": out})
}

// getNode is CCF's GET /node/network/nodes/{node_id}: a node by CCF's id
// (hex), by Charter's raft id (decimal), or "self" and "primary" (this
// node, the leader), as CCF's /node/network/nodes/self and /primary.
func (s *Server) getNode(w http.ResponseWriter, r *http.Request) {
	want := chi.URLParam(r, "id")
	all, err := s.nodeViews()
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	for _, v := range all {
		match := v.NodeID != "" && v.NodeID == want
		switch want {
		case "self":
			match = v.RaftID == s.cfg.NodeID
		case "primary":
			match = v.Primary
		default:
			if id, err := strconv.ParseUint(want, 10, 64); err == nil && len(want) < 20 {
				match = match || v.RaftID == id
			}
		}
		if match {
			writeJSON(w, http.StatusOK, v)
			return
		}
	}
	detail := "no node " + strconv.Quote(want) + " (GET /node/network/nodes lists them)"
	if want == "primary" {
		detail = "no primary is known to this node"
	}
	writeError(w, r, notFound(detail))
}

// lastCommitted is the last committed transaction's id, "0.0" for none.
func (s *Server) lastCommitted() (string, error) {
	size := s.cfg.Ledger.State().Size
	if size == 0 {
		return "0.0", nil
	}
	rec, err := s.cfg.Ledger.Record(size)
	if err != nil {
		return "", err
	}
	return strconv.FormatUint(rec.View, 10) + "." + strconv.FormatUint(rec.Seqno, 10), nil
}

// getCommit is CCF's GET /node/commit. CCF's view_history parameters are
// not served: asking for them is refused rather than ignored.
func (s *Server) getCommit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Has("view_history") || q.Has("view_history_since") {
		writeError(w, r, &registry.Problem{Status: http.StatusBadRequest, Title: "InvalidQueryParameterValue",
			Detail: "view_history is not served by Charter: GET /node/commit answers the last committed transaction only"})
		return
	}
	txid, err := s.lastCommitted()
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"transaction_id": txid})
}

// getState is CCF's GET /node/state. state is PartOfNetwork once the node
// serves, Pending until then (replaying its ledger, or a joiner waiting
// for the network). last_signed_seqno is the size of the last checkpoint
// (Charter's signature transaction: it signs the tree up to that seqno);
// startup_seqno the ledger's size when this node's edge was built, after
// its store opened.
func (s *Server) getState(w http.ResponseWriter, r *http.Request) {
	// Served before the node is ready, but not while a snapshot install
	// rewrites the store it reads.
	if s.installing(w, r) {
		return
	}
	state := "PartOfNetwork"
	if !s.cfg.Ready() {
		state = "Pending"
	}
	var signed uint64
	cp, err := s.cfg.Ledger.LatestCheckpoint()
	switch {
	case err == nil:
		signed = cp.TreeSize
	case !errors.Is(err, ledger.ErrNotFound):
		writeError(w, r, problemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"node_id": s.selfID(), "state": state, "last_signed_seqno": signed, "startup_seqno": s.startupSeqno,
		"raft_id": s.cfg.NodeID,
	})
}

// primaryProbe is CCF's /node/primary: 200 on the leader. Elsewhere GET
// is 404 ("Node is not primary"), and HEAD is 308 to the leader's
// /node/primary when a leader is known (404 when none is).
func (s *Server) primaryProbe(w http.ResponseWriter, r *http.Request) {
	if leader, _ := s.cfg.Raft.Leader(); leader {
		w.WriteHeader(http.StatusOK)
		return
	}
	if r.Method == http.MethodHead {
		if u := s.leaderURL(); u != "" {
			w.Header().Set("Location", strings.TrimRight(u, "/")+"/node/primary")
			w.WriteHeader(http.StatusPermanentRedirect)
			return
		}
		writeError(w, r, notFound("Primary unknown"))
		return
	}
	writeError(w, r, notFound("Node is not primary"))
}

// backupProbe is CCF's GET /node/backup: 200 on a node that does not
// lead, 404 on the leader.
func (s *Server) backupProbe(w http.ResponseWriter, r *http.Request) {
	if leader, _ := s.cfg.Raft.Leader(); leader {
		writeError(w, r, notFound("Node is not backup"))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// leaderURL is the leader's published URL (its node record's, else its
// URL in raft's membership: the address clients reach, not the one this
// node may dial it at over a private route), "" while no leader is known.
func (s *Server) leaderURL() string {
	lead := s.cfg.Raft.LeaderID()
	if lead == 0 {
		return ""
	}
	if rec, ok := join.RecordOf(s.cfg.Ledger, lead); ok && rec.URL != "" {
		return rec.URL
	}
	nodes, err := s.cfg.Raft.Nodes()
	if err != nil {
		return ""
	}
	for _, n := range nodes {
		if n.ID == lead {
			return n.URL
		}
	}
	return ""
}
