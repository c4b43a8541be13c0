package httpapi

import (
	"crypto/ecdsa"
	"crypto/x509"
	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/charterlog/charter/internal/apphost"
	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/peer"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/registry"
)

// Config is what a node's HTTP edge serves from. The node fills it in
// before it serves; every func is called per request, after Ready.
type Config struct {
	NodeID uint64
	Log    *slog.Logger
	Ledger *ledger.Ledger
	Raft   *replication.Node
	// Forward makes a follower send writes to the leader (forwardWrites).
	Forward bool
	// Ready reports whether the node has recovered: until then only
	// health, metrics, the node's quote and the peers' routes are served.
	Ready func() bool

	Registry *registry.Service
	Gov      *gov.Service
	Apps     *apphost.Host
	Joins    *join.Leader

	// IdentifyPeer maps a TLS client certificate to the network's node it
	// belongs to; an error wrapping peer.ErrNotPeer refuses it.
	IdentifyPeer func(leaf *x509.Certificate) (peer.Peer, error)
	// PeerClient reaches node id over the peers' mutual TLS.
	PeerClient func(id uint64) *http.Client

	// LedgerDir holds the node's ledger chunk files (GET /node/ledger/chunks).
	LedgerDir string

	// What GET /node/network and /node/quotes/self tell about the service
	// and this node.
	ServiceCertPEM []byte
	Issuer         string
	NoteVerifier   string
	NetworkKind    func() string
	Evidence       *attest.Evidence
	NodeKey        *ecdsa.PublicKey

	// Collectors are the node's own metrics, served at /metrics.
	Collectors []prometheus.Collector
}

// Server is a node's HTTP edge: the router, its middleware, the /node,
// /app and /node/join handlers, and the mapping of the errors of the
// packages below to HTTP answers (problems.go).
type Server struct {
	cfg Config
	// startupSeqno is the ledger's size when the edge was built (CCF's
	// startup_seqno in GET /node/state).
	startupSeqno uint64
	// status caches the governed service status (cachedServiceStatus).
	status atomic.Pointer[statusAt]
}

// New returns the edge over cfg.
func New(cfg Config) *Server {
	s := &Server{cfg: cfg}
	if cfg.Ledger != nil {
		s.startupSeqno = cfg.Ledger.State().Size
	}
	return s
}
