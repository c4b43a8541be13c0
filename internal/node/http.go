package node

import (
	"encoding/json"
	"errors"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/join"
	"net/http"
	"strconv"
	"time"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func (n *Node) routes(svc *registry.Service) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(n.ledger.Collectors()...)
	reg.MustRegister(n.raft.Collectors()...)
	requests := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "charter_http_request_duration_seconds",
		Help:    "HTTP request latency by route, method and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"route", "method", "code"})
	reg.MustRegister(requests)

	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			start := time.Now()
			ww := middleware.NewWrapResponseWriter(w, req.ProtoMajor)
			next.ServeHTTP(ww, req)
			route := chi.RouteContext(req.Context()).RoutePattern()
			if route == "" {
				route = "unmatched"
			}
			requests.WithLabelValues(route, req.Method, strconv.Itoa(ww.Status())).Observe(time.Since(start).Seconds())
			if ww.Status() >= 500 {
				n.log.Warn("request failed", "method", req.Method, "path", req.URL.Path, "status", ww.Status())
			}
		})
	})
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusNotFound, Title: "NotFound", Detail: "no endpoint " + req.Method + " " + req.URL.Path})
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusMethodNotAllowed, Title: "MethodNotAllowed", Detail: req.Method + " is not allowed on " + req.URL.Path})
	})
	// Always served: peers need raft from the first moment, operators need
	// health and metrics.
	r.Get("/node/health", n.getHealth)
	r.Get(pathQuoteSelf, n.getQuoteSelf)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// Peers only, each in its role (peers.go).
	r.Group(func(r chi.Router) {
		r.Use(n.requirePeer)
		r.Post(replication.PathRaft, n.peerHandler(n.raft.ReceiveRaft))
		r.Post(replication.PathSnapshot, n.peerHandler(n.raft.ReceiveSnapshot))
		r.Get(replication.PathSnapshotBase, n.peerQuery(n.raft.SnapshotBase))
	})
	// A joining node has no certificate yet: its evidence and the signature
	// by the key it binds are its credentials.
	r.With(n.whenReady, n.forwardWrites).Post(pathJoin, n.postJoin)
	// Served once the node has recovered.
	r.Group(func(r chi.Router) {
		r.Use(n.whenReady)
		r.Use(n.forwardWrites)
		svc.Routes(r)
		n.gov.Routes(r)
		r.Get("/node/tx", n.getTx)
		r.Get("/node/ledger/tx", n.getLedgerTx)
		r.Get("/node/receipt", n.getReceipt)
		r.Get("/node/ledger/range", n.getLedgerRange)
		r.Get("/node/network", n.getNetwork)
		r.Get(pathQuotes, n.getQuotes)
		r.Get("/app/commit", n.getAppCommit)
		r.HandleFunc("/app/*", n.serveApp)
		r.Get("/node/network/nodes", n.getNodes)
		r.Get("/node/consensus", n.getConsensus)
	})
	reg.MustRegister(svc.Collectors()...)
	return r
}

// whenReady answers 503 until the node has recovered.
func (n *Node) whenReady(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !n.ready.Load() {
			registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
				Detail: "the node is starting: replaying its ledger or waiting for the network", RetryAfter: 1})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// getHealth answers 200 when this node serves: it has recovered and knows
// a leader (itself or another). Otherwise 503, with the reason.
func (n *Node) getHealth(w http.ResponseWriter, r *http.Request) {
	leader, term := n.raft.Leader()
	leaderID := n.raft.LeaderID()
	st := n.ledger.State()
	status, code := "ok", http.StatusOK
	switch {
	case !n.ready.Load():
		status, code = "starting", http.StatusServiceUnavailable
	case leaderID == 0:
		status, code = "no leader", http.StatusServiceUnavailable
	}
	writeJSON(w, code, map[string]any{
		"status": status, "node_id": n.cfg.NodeID, "leader": leader, "leader_id": leaderID, "view": term,
		"ledger_size": st.Size, "checkpoint_size": st.LastCheckpointSize,
	})
}

// getTx reports a transaction's status (CCF's GET /node/tx).
func (n *Node) getTx(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("transaction_id")
	txid, err := log.ParseTxID(raw)
	if err != nil {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusBadRequest, Title: "InvalidTransactionId", Detail: "transaction_id " + strconv.Quote(raw) + ": " + err.Error()})
		return
	}
	status, err := n.ledger.Status(txid)
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"transaction_id": txid.String(), "status": status})
}

func (n *Node) getNetwork(w http.ResponseWriter, r *http.Request) {
	_, term := n.raft.Leader()
	st := n.ledger.State()
	cp, err := n.ledger.LatestCheckpoint()
	var cpSize uint64
	if err == nil {
		cpSize = cp.TreeSize
	} else if !errors.Is(err, ledger.ErrNotFound) {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"service_certificate": string(n.id.ServiceCertPEM),
		"service_status":      n.serviceStatus(),
		"issuer":              n.issuer,
		"note_verifier_key":   n.id.NoteVerifier,
		"network_kind":        n.genesis.NetworkKind(),
		"current_view":        term,
		"ledger_size":         st.Size,
		"checkpoint_size":     cpSize,
	})
}

// serviceStatus is the governed service state (Opening or Open).
func (n *Node) serviceStatus() string {
	if join.ServiceOpen(n.ledger) {
		return gov.ServiceOpen
	}
	return gov.ServiceOpening
}
