package httpapi

import (
	"encoding/json"
	"errors"
	"github.com/charterlog/charter/internal/govwire"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/peer"
	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// cpuClasses selects the runtime/metrics CPU estimates the Go collector
// exports as go_cpu_classes_…_cpu_seconds_total.
var cpuClasses = regexp.MustCompile(`^/cpu/classes/.*`)

// Handler routes every request a node serves: the SCRAPI routes
// (registry), governance (/gov), the app (/app), the node's own (/node),
// the peers' raft routes and /metrics.
func (s *Server) Handler() http.Handler {
	svc := s.cfg.Registry
	reg := prometheus.NewRegistry()
	// The runtime's CPU classes (/cpu/classes/…: GC, scavenger, user, idle)
	// besides the default Go metrics: charterbench reads the GC's CPU from
	// them for its breakdown of a registration's cost.
	reg.MustRegister(collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.GoRuntimeMetricsRule{Matcher: cpuClasses})),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(s.cfg.Ledger.Collectors()...)
	reg.MustRegister(s.cfg.Raft.Collectors()...)
	reg.MustRegister(s.cfg.Collectors...)
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
				s.cfg.Log.Warn("request failed", "method", req.Method, "path", req.URL.Path, "status", ww.Status())
			}
		})
	})
	r.NotFound(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, req, notFound("no endpoint "+req.Method+" "+req.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, req *http.Request) {
		writeError(w, req, &registry.Problem{Status: http.StatusMethodNotAllowed, Title: "MethodNotAllowed", Code: "UnsupportedHttpVerb", Detail: req.Method + " is not allowed on " + req.URL.Path})
	})
	// Always served: peers need raft from the first moment, operators need
	// health and metrics.
	r.Get("/node/health", s.getHealth)
	r.Get("/node/version", s.getVersion)
	r.Get("/node/state", s.getState)
	r.Get(pathQuoteSelf, s.getQuoteSelf)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	// Peers only, each in its role (peers.go; who a peer is, and what its
	// requests carry, internal/peer).
	r.Group(func(r chi.Router) {
		r.Use(s.requirePeer)
		r.Post(peer.PathRaft, s.peerHandler(peer.ReceiveRaft))
		r.Post(peer.PathSnapshot, s.peerHandler(peer.ReceiveSnapshot))
		r.Get(peer.PathSnapshotBase, s.peerQuery(s.cfg.Raft.SnapshotBase))
		r.Get(peer.PathHistory, s.getHistory)
	})
	// A joining node has no certificate yet: its evidence and the signature
	// by the key it binds are its credentials.
	r.With(s.whenReady, s.forwardWrites).Post(join.Path, s.postJoin)
	// Served once the node has recovered.
	r.Group(func(r chi.Router) {
		r.Use(s.whenReady)
		r.Use(s.refuseWhileRecovering)
		r.Use(s.forwardWrites)
		svc.Routes(r)
		govAPI{svc: s.cfg.Gov, log: s.cfg.Log, node: s, trustedPeer: s.trustedPeer}.routes(r)
		s.recoveryRoutes(r)
		r.Get("/node/tx", s.getTx)
		r.Get("/node/ledger/tx", s.getLedgerTx)
		r.Get("/node/receipt", s.getReceipt)
		r.Get("/node/ledger/range", s.getLedgerRange)
		r.Get("/node/ledger/chunks", s.getLedgerChunks)
		r.Get("/node/ledger/chunks/{name}", s.getLedgerChunk)
		r.Get("/node/network", s.getNetwork)
		r.Get(pathQuotes, s.getQuotes)
		r.Get("/app/commit", s.getAppCommit)
		r.HandleFunc("/app/*", s.serveApp)
		r.Get("/node/network/nodes", s.getNodes)
		r.Get("/node/network/nodes/{id}", s.getNode)
		r.Get("/node/commit", s.getCommit)
		r.Get("/node/primary", s.primaryProbe)
		r.Head("/node/primary", s.primaryProbe)
		r.Get("/node/backup", s.backupProbe)
		r.Get("/app/api", s.getAppAPI)
		r.Get("/node/consensus", s.getConsensus)
	})
	reg.MustRegister(svc.Collectors()...)
	return r
}

// whenReady answers 503 until the node has recovered.
func (s *Server) whenReady(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.cfg.Ready() {
			writeError(w, r, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
				Detail: "the node is starting: replaying its ledger or waiting for the network", RetryAfter: 1})
			return
		}
		if s.installing(w, r) {
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
func (s *Server) getHealth(w http.ResponseWriter, r *http.Request) {
	leader, term := s.cfg.Raft.Leader()
	leaderID := s.cfg.Raft.LeaderID()
	st := s.cfg.Ledger.State()
	status, code := "ok", http.StatusOK
	switch {
	case !s.cfg.Ready():
		status, code = "starting", http.StatusServiceUnavailable
	case leaderID == 0:
		status, code = "no leader", http.StatusServiceUnavailable
	}
	// history: whether this node holds its whole ledger, or installed a
	// state image and is still fetching the transactions below its floor
	// (reads of those answer 503 HistoryIncomplete meanwhile).
	history := map[string]any{"complete": true}
	if g, incomplete := s.cfg.Raft.History(); incomplete {
		history = map[string]any{"complete": false, "held_to": g.Next, "missing_to": g.Floor}
	}
	writeJSON(w, code, map[string]any{
		"status": status, "node_id": s.cfg.NodeID, "leader": leader, "leader_id": leaderID, "view": term,
		"ledger_size": st.Size, "checkpoint_size": st.LastCheckpointSize, "history": history,
	})
}

// getTx reports a transaction's status (CCF's GET /node/tx).
func (s *Server) getTx(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("transaction_id")
	txid, err := log.ParseTxID(raw)
	if err != nil {
		writeError(w, r, &registry.Problem{Status: http.StatusBadRequest, Title: "InvalidTransactionId", Code: "InvalidQueryParameterValue", Detail: "transaction_id " + strconv.Quote(raw) + ": " + err.Error()})
		return
	}
	status, err := s.cfg.Ledger.Status(txid)
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"transaction_id": txid.String(), "status": status})
}

// getNetwork is CCF's GET /node/network (GetNetworkInfo: service_status,
// service_certificate, current_view, primary_id, recovery_count,
// service_data, current_service_create_txid), with Charter's own facts:
// the SCITT issuer, the note verifier key, the network's kind, the ledger
// and checkpoint sizes, and the endorsements of previous identities by the
// recoveries (spec/formats.md). primary_id is omitted while no leader is
// known.
func (s *Server) getNetwork(w http.ResponseWriter, r *http.Request) {
	_, term := s.cfg.Raft.Leader()
	st := s.cfg.Ledger.State()
	cp, err := s.cfg.Ledger.LatestCheckpoint()
	var cpSize uint64
	if err == nil {
		cpSize = cp.TreeSize
	} else if !errors.Is(err, ledger.ErrNotFound) {
		writeError(w, r, problemFor(err))
		return
	}
	endorsements, err := s.serviceEndorsements()
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	out := map[string]any{
		"service_certificate":           string(s.cfg.ServiceCertPEM),
		"service_status":                s.serviceStatus(),
		"service_identity_endorsements": endorsements,
		"current_view":                  term,
		"service_data":                  nil,
		"issuer":                        s.cfg.Issuer,
		"note_verifier_key":             s.cfg.NoteVerifier,
		"network_kind":                  s.cfg.NetworkKind(),
		"ledger_size":                   st.Size,
		"checkpoint_size":               cpSize,
	}
	recoveries, created, err := s.serviceCreation()
	if err != nil {
		writeError(w, r, problemFor(err))
		return
	}
	out["recovery_count"] = recoveries
	if created != "" {
		out["current_service_create_txid"] = created
	}
	if lead := s.cfg.Raft.LeaderID(); lead != 0 {
		if rec, ok := join.RecordOf(s.cfg.Ledger, lead); ok {
			if id := govwire.NodeIDOfPEM(rec.PublicKey); id != "" {
				out["primary_id"] = id
			}
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// serviceCreation is how many times the service was recovered and the id
// of the transaction that created the current service: the ledger's first
// transaction, or the latest recovery's ("" while the ledger is empty).
func (s *Server) serviceCreation() (recoveries int, createTxID string, err error) {
	recs, err := s.cfg.Ledger.Recoveries()
	if err != nil {
		return 0, "", err
	}
	seqno := uint64(1)
	if len(recs) > 0 {
		seqno = recs[len(recs)-1].Seqno
	}
	if s.cfg.Ledger.State().Size < seqno {
		return len(recs), "", nil
	}
	rec, err := s.cfg.Ledger.Record(seqno)
	if err != nil {
		return 0, "", err
	}
	return len(recs), strconv.FormatUint(rec.View, 10) + "." + strconv.FormatUint(seqno, 10), nil
}

// serviceStatus is the governed service state (Opening, Open, Recovering
// or WaitingForRecoveryShares).
func (s *Server) serviceStatus() string { return s.cfg.Gov.ServiceStatus() }

// installing answers 503 while a snapshot install replaces the node's
// state (its store is half written until then), and reports whether it
// did.
func (s *Server) installing(w http.ResponseWriter, r *http.Request) bool {
	if s.cfg.Raft == nil || !s.cfg.Raft.Installing() {
		return false
	}
	writeError(w, r, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable",
		Detail: "the node is installing a snapshot from the leader", RetryAfter: 1})
	return true
}
