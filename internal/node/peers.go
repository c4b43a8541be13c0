package node

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
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/registry"
)

// peer is an authenticated peer: the node its key belongs to.
type peer struct {
	ID uint64
	// Record is the node's governance record; Recorded is false for a node
	// admitted by its certificate alone (the lagging-node exception).
	Record   join.NodeRecord
	Recorded bool
	// Role is the node's raft role on this node's ledger ("" if unknown).
	Role string
}

// trusted reports whether the peer may act for the network (relay a
// client's request, lead): governance trusts it and, if it joined, it
// was given the secrets.
func (p peer) trusted() bool {
	if !p.Recorded {
		return true // a server certificate only a trusted node can issue
	}
	return p.Record.Status == join.NodeTrusted && (!p.Record.Joined || p.Record.SecretsReleased)
}

// sender is what the raft handlers check the peer's messages against.
func (p peer) sender() replication.Sender {
	return replication.Sender{ID: p.ID, Voter: p.trusted() && (p.Role == replication.RoleVoter || !p.Recorded && p.Role == "")}
}

// errPeer is a peer request the caller is not allowed to make.
var errPeer = errors.New("not a node of this network")

// peerDirectory indexes the nodes' records by key; it is rebuilt when the
// key-value state changes (Ledger.WritesVersion).
type peerDirectory struct {
	mu      sync.Mutex
	version uint64
	valid   bool
	byKey   map[string]uint64 // public key PEM → node id
	byID    map[uint64]join.NodeRecord
}

func (n *Node) peerIndex() (map[string]uint64, map[uint64]join.NodeRecord, error) {
	d := &n.peerDir
	v := n.ledger.WritesVersion()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.valid && d.version == v {
		return d.byKey, d.byID, nil
	}
	recs, err := join.Records(n.ledger)
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

// identifyPeer maps a TLS client certificate to the node it belongs to.
func (n *Node) identifyPeer(leaf *x509.Certificate) (peer, error) {
	key, ok := publicKeyOf(leaf)
	if !ok {
		return peer{}, fmt.Errorf("%w: the certificate's key is not ECDSA", errPeer)
	}
	byKey, byID, err := n.peerIndex()
	if err != nil {
		return peer{}, err
	}
	named, hasName := certNodeID(leaf)
	p := peer{}
	if id, ok := byKey[join.PublicKeyPEM(key)]; ok {
		if hasName && named != id {
			return peer{}, fmt.Errorf("%w: the certificate names node %d, but its key is node %d's", errPeer, named, id)
		}
		p = peer{ID: id, Record: byID[id], Recorded: true}
		if p.Record.Status == join.NodeRetired {
			return peer{}, fmt.Errorf("%w: node %d was retired", errPeer, id)
		}
	} else {
		// The lagging-node exception (see the file comment).
		if !hasName {
			return peer{}, fmt.Errorf("%w: no node of this network has this key", errPeer)
		}
		if _, known := byID[named]; known {
			return peer{}, fmt.Errorf("%w: the certificate names node %d, which has another key", errPeer, named)
		}
		if err := n.verifyServiceIssued(leaf, x509.ExtKeyUsageServerAuth); err != nil {
			return peer{}, fmt.Errorf("%w: no node of this network has this key, and the certificate is not a trusted node's: %v", errPeer, err)
		}
		p = peer{ID: named}
	}
	if info, err := n.raft.NodeInfo(p.ID); err == nil {
		if info.Role == replication.RoleRemoved {
			return peer{}, fmt.Errorf("%w: node %d was removed", errPeer, p.ID)
		}
		p.Role = info.Role
	}
	return p, nil
}

// verifyServiceIssued checks that leaf chains to the service certificate
// for usage.
func (n *Node) verifyServiceIssued(leaf *x509.Certificate, usage x509.ExtKeyUsage) error {
	_, err := leaf.Verify(x509.VerifyOptions{Roots: n.servicePool(), KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

type peerContextKey struct{}

// requirePeer admits only the network's nodes (identifyPeer) and hands the
// peer to the handler through the request's context.
func (n *Node) requirePeer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := n.requestPeer(r)
		if err != nil {
			if !errors.Is(err, errPeer) {
				registry.WriteProblem(w, registry.ProblemFor(err))
				return
			}
			registry.WriteProblem(w, &registry.Problem{Status: http.StatusForbidden, Title: "Forbidden",
				Detail: "this endpoint is for the network's nodes: " + err.Error()})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerContextKey{}, p)))
	})
}

// requestPeer identifies the node that made r by its TLS client
// certificate.
func (n *Node) requestPeer(r *http.Request) (peer, error) {
	if p, ok := r.Context().Value(peerContextKey{}).(peer); ok {
		return p, nil
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return peer{}, fmt.Errorf("%w: present the node's certificate", errPeer)
	}
	return n.identifyPeer(r.TLS.PeerCertificates[0])
}

// trustedPeer reports whether r's TLS client is a node the network trusts:
// only such a node's word on its own client's identity is believed, and
// only its forwarded requests are treated as forwarded.
func (n *Node) trustedPeer(r *http.Request) bool {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return false
	}
	p, err := n.requestPeer(r)
	return err == nil && p.trusted()
}

// peerHandler answers a peer's raft request: 204, or a problem (400 for a
// malformed message, 403 for one the peer may not send, 503 while
// stopping).
func (n *Node) peerHandler(receive func(*http.Request, replication.Sender) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := n.peerOf(w, r)
		if !ok {
			return
		}
		if err := receive(r, p.sender()); err != nil {
			n.writePeerError(w, p, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

// peerQuery serves a peer's GET with what answer returns for it.
func (n *Node) peerQuery(answer func(replication.Sender) ([]byte, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := n.peerOf(w, r)
		if !ok {
			return
		}
		body, err := answer(p.sender())
		if err != nil {
			n.writePeerError(w, p, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(body)
	}
}

// peerOf returns the peer requirePeer established, or refuses the request.
func (n *Node) peerOf(w http.ResponseWriter, r *http.Request) (peer, bool) {
	p, ok := r.Context().Value(peerContextKey{}).(peer)
	if !ok {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusForbidden, Title: "Forbidden", Detail: "this endpoint is for the network's nodes"})
	}
	return p, ok
}

func (n *Node) writePeerError(w http.ResponseWriter, p peer, err error) {
	switch {
	case errors.Is(err, replication.ErrForbidden):
		n.log.Warn("refused a peer's request", "peer", p.ID, "err", err)
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusForbidden, Title: "Forbidden", Detail: err.Error()})
	case errors.Is(err, replication.ErrBadMessage):
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusBadRequest, Title: "InvalidRaftMessage", Detail: err.Error()})
	default:
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", Detail: err.Error(), RetryAfter: 1})
	}
}

// verifyPeerServer accepts the TLS server at node id's address only if it
// is node id: the key the ledger records for it (not retired), or, for a
// node this ledger does not record yet, a server certificate issued by the
// service key that names id.
func (n *Node) verifyPeerServer(id uint64, cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	_, byID, err := n.peerIndex()
	if err != nil {
		return err
	}
	if rec, ok := byID[id]; ok && rec.PublicKey != "" {
		key, ok := publicKeyOf(leaf)
		switch {
		case rec.Status == join.NodeRetired:
			return fmt.Errorf("node %d was retired", id)
		case !ok || join.PublicKeyPEM(key) != rec.PublicKey:
			return fmt.Errorf("the server at node %d's address does not hold node %d's key", id, id)
		}
		return nil
	}
	if named, ok := certNodeID(leaf); !ok || named != id {
		return fmt.Errorf("the server at node %d's address has a certificate that does not name node %d", id, id)
	}
	return n.verifyServiceIssued(leaf, x509.ExtKeyUsageServerAuth)
}

// peerClientFor returns the client that reaches node id: it presents this
// node's current certificate and accepts only id's (verifyPeerServer).
func (n *Node) peerClientFor(id uint64) *http.Client {
	if c, ok := n.peerClients.Load(id); ok {
		return c.(*http.Client)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: tls12CipherSuites,
		// The standard verification (a chain to a root, the dialled host)
		// is replaced by verifyPeerServer, which checks more: that the
		// server is the node dialled, by its key.
		InsecureSkipVerify:   true,
		VerifyConnection:     func(cs tls.ConnectionState) error { return n.verifyPeerServer(id, cs) },
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return n.tlsCert.Load(), nil },
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
	c, _ := n.peerClients.LoadOrStore(id, &http.Client{Transport: tr})
	return c.(*http.Client)
}

// tls12CipherSuites are the TLS 1.2 suites Charter offers and accepts:
// ECDHE key exchange with AEAD ciphers only (no CBC, no SHA-1, no RSA key
// exchange). TLS 1.3, preferred whenever both sides have it, has only AEAD
// suites.
var tls12CipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}
