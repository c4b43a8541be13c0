package peer

// Peer authorization (spec/security.md, "Peers"): a peer is exactly the node
// its TLS key belongs to, in the role the ledger gives it.
//
//   - On the server side, every peer endpoint maps the caller's key to its
//     record in public:ccf.gov.nodes.info and refuses unknown and retired
//     keys (403). The raft handlers then accept only messages whose From is
//     that node and whose type its role may send (replication.Sender).
//   - On the client side, a node reaching peer N accepts only N's own key.
//
// One exception keeps a lagging node able to catch up: a node whose ledger
// does not record a key yet (it is behind the join of the node that now
// leads) accepts a server certificate issued by the service key that names
// the caller's node id, if its ledger says nothing else of that id. Only a
// node that holds the service key (a trusted one) can issue such a
// certificate; spec/security.md says what this leaves open.

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/replication"
)

// Peer is an authenticated peer: the node its TLS key belongs to
// (Directory.Identify, spec/security.md "Peers").
type Peer struct {
	ID uint64
	// Record is the node's governance record; Recorded is false for a node
	// admitted by its certificate alone (the lagging-node exception).
	Record   join.NodeRecord
	Recorded bool
	// Role is the node's raft role on this node's ledger ("" if unknown).
	Role string
}

// Trusted reports whether the peer may act for the network (relay a
// client's request, lead): governance trusts it and, if it joined, it
// was given the secrets.
func (p Peer) Trusted() bool {
	if !p.Recorded {
		return true // a server certificate only a trusted node can issue
	}
	return p.Record.Status == join.NodeTrusted && (!p.Record.Joined || p.Record.SecretsReleased)
}

// Sender is what the raft handlers check the peer's messages against.
func (p Peer) Sender() replication.Sender {
	return replication.Sender{ID: p.ID, Voter: p.Trusted() && (p.Role == replication.RoleVoter || !p.Recorded && p.Role == "")}
}

// ErrNotPeer is a peer request the caller is not allowed to make.
var ErrNotPeer = errors.New("not a node of this network")

// Ledger is what identification reads of the ledger: the nodes' records
// (public:ccf.gov.nodes.info, through join.Records) and a version that
// changes whenever the key-value state does (ledger.Ledger is one).
type Ledger interface {
	join.State
	WritesVersion() uint64
}

// DirectoryConfig is what a Directory identifies peers by.
type DirectoryConfig struct {
	// Ledger holds the nodes' records.
	Ledger Ledger
	// ServiceCert is the service certificate, which issues the nodes'.
	ServiceCert *x509.Certificate
	// NodeInfo is a node's raft configuration on this node's ledger
	// (replication.Node.NodeInfo); called per request, once raft runs.
	NodeInfo func(id uint64) (replication.NodeInfo, error)
	// Certificate is this node's current TLS certificate, presented to
	// peers (it changes once, when a joined node is trusted).
	Certificate func() *tls.Certificate
}

// Directory says who a TLS key is: the network's node it belongs to, in
// the role the ledger gives it; and gives the clients that reach each
// node, accepting only its key.
type Directory struct {
	cfg DirectoryConfig

	// The nodes' records indexed by key; rebuilt when the key-value state
	// changes (Ledger.WritesVersion).
	mu      sync.Mutex
	version uint64
	valid   bool
	byKey   map[string]uint64 // public key PEM → node id
	byID    map[uint64]join.NodeRecord

	// clients holds the client that reaches each peer (node id →
	// *http.Client), each accepting only that peer's key.
	clients sync.Map
}

// NewDirectory returns a directory over cfg.
func NewDirectory(cfg DirectoryConfig) *Directory { return &Directory{cfg: cfg} }

// Index returns the nodes' records, by key (public key PEM → node id) and
// by id, as of the ledger's current writes; the join leader checks a new
// node's key against it. The maps are shared: callers only read them.
func (d *Directory) Index() (map[string]uint64, map[uint64]join.NodeRecord, error) {
	v := d.cfg.Ledger.WritesVersion()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.valid && d.version == v {
		return d.byKey, d.byID, nil
	}
	recs, err := join.Records(d.cfg.Ledger)
	if err != nil {
		return nil, nil, err
	}
	byKey := make(map[string]uint64, len(recs))
	for id, r := range recs {
		if r.PublicKey != "" {
			byKey[r.PublicKey] = id
		}
	}
	d.byKey, d.byID, d.version, d.valid = byKey, recs, v, true
	return byKey, recs, nil
}

// Identify maps a TLS client certificate to the node it belongs to; an
// error wrapping ErrNotPeer refuses it.
func (d *Directory) Identify(leaf *x509.Certificate) (Peer, error) {
	key, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return Peer{}, fmt.Errorf("%w: the certificate's key is not ECDSA", ErrNotPeer)
	}
	byKey, byID, err := d.Index()
	if err != nil {
		return Peer{}, err
	}
	named, hasName := identity.CertNodeID(leaf)
	p := Peer{}
	if id, ok := byKey[join.PublicKeyPEM(key)]; ok {
		if hasName && named != id {
			return Peer{}, fmt.Errorf("%w: the certificate names node %d, but its key is node %d's", ErrNotPeer, named, id)
		}
		p = Peer{ID: id, Record: byID[id], Recorded: true}
		if p.Record.Status == join.NodeRetired {
			return Peer{}, fmt.Errorf("%w: node %d was retired", ErrNotPeer, id)
		}
	} else {
		// The lagging-node exception (see the file comment).
		if !hasName {
			return Peer{}, fmt.Errorf("%w: no node of this network has this key", ErrNotPeer)
		}
		if _, known := byID[named]; known {
			return Peer{}, fmt.Errorf("%w: the certificate names node %d, which has another key", ErrNotPeer, named)
		}
		if err := d.verifyServiceIssued(leaf, x509.ExtKeyUsageServerAuth); err != nil {
			return Peer{}, fmt.Errorf("%w: no node of this network has this key, and the certificate is not a trusted node's: %v", ErrNotPeer, err)
		}
		p = Peer{ID: named}
	}
	if info, err := d.cfg.NodeInfo(p.ID); err == nil {
		if info.Role == replication.RoleRemoved {
			return Peer{}, fmt.Errorf("%w: node %d was removed", ErrNotPeer, p.ID)
		}
		p.Role = info.Role
	}
	return p, nil
}

// verifyServiceIssued checks that leaf chains to the service certificate
// for usage.
func (d *Directory) verifyServiceIssued(leaf *x509.Certificate, usage x509.ExtKeyUsage) error {
	pool := x509.NewCertPool()
	pool.AddCert(d.cfg.ServiceCert)
	_, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// verifyPeerServer accepts the TLS server at node id's address only if it
// is node id: the key the ledger records for it (not retired), or, for a
// node this ledger does not record yet, a server certificate issued by the
// service key that names id.
func (d *Directory) verifyPeerServer(id uint64, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	_, byID, err := d.Index()
	if err != nil {
		return err
	}
	if rec, ok := byID[id]; ok && rec.PublicKey != "" {
		key, ok := leaf.PublicKey.(*ecdsa.PublicKey)
		switch {
		case rec.Status == join.NodeRetired:
			return fmt.Errorf("node %d was retired", id)
		case !ok || join.PublicKeyPEM(key) != rec.PublicKey:
			return fmt.Errorf("the server at node %d's address does not hold node %d's key", id, id)
		}
		return nil
	}
	if named, ok := identity.CertNodeID(leaf); !ok || named != id {
		return fmt.Errorf("the server at node %d's address has a certificate that does not name node %d", id, id)
	}
	return d.verifyServiceIssued(leaf, x509.ExtKeyUsageServerAuth)
}

// Client returns the client that reaches node id: it presents this
// node's current certificate and accepts only id's (verifyPeerServer).
func (d *Directory) Client(id uint64) *http.Client {
	if c, ok := d.clients.Load(id); ok {
		return c.(*http.Client)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: TLS12CipherSuites,
		// The standard verification (a chain to a root, the dialled host)
		// is replaced by verifyPeerServer, which checks more: that the
		// server is the node dialled, by its key.
		InsecureSkipVerify:   true,
		VerifyConnection:     func(cs tls.ConnectionState) error { return d.verifyPeerServer(id, cs) },
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return d.cfg.Certificate(), nil },
	}
	tr.MaxIdleConnsPerHost = 16
	tr.IdleConnTimeout = 90 * time.Second
	// A peer's connection can die without a word: a partition drops
	// packets, and TCP's retransmission backoff keeps the connection
	// silent long after the network returns. HTTP/2 keeps a connection
	// whose requests time out, so every raft message to that peer would
	// wait out the transport's timeout on it, for good: after a partition
	// a node stayed cut off from a healed majority for 30 s and more. Ping
	// a connection silent for a second, and close it when the ping is not
	// answered within another, so the next message dials afresh; and give
	// a dial or handshake 2 s, not 30.
	tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: time.Second, PingTimeout: time.Second}
	tr.DialContext = (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 15 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 2 * time.Second
	c, _ := d.clients.LoadOrStore(id, &http.Client{Transport: tr})
	return c.(*http.Client)
}

// TLS12CipherSuites are the TLS 1.2 suites Charter offers and accepts, on
// the peers' clients and on the node's listener:
// ECDHE key exchange with AEAD ciphers only (no CBC, no SHA-1, no RSA key
// exchange). TLS 1.3, preferred whenever both sides have it, has only AEAD
// suites.
var TLS12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}
