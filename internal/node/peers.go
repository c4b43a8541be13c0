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
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/charterlog/charter/internal/httpapi"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/replication"
)

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
func (n *Node) identifyPeer(leaf *x509.Certificate) (httpapi.Peer, error) {
	key, ok := publicKeyOf(leaf)
	if !ok {
		return httpapi.Peer{}, fmt.Errorf("%w: the certificate's key is not ECDSA", httpapi.ErrNotPeer)
	}
	byKey, byID, err := n.peerIndex()
	if err != nil {
		return httpapi.Peer{}, err
	}
	named, hasName := identity.CertNodeID(leaf)
	p := httpapi.Peer{}
	if id, ok := byKey[join.PublicKeyPEM(key)]; ok {
		if hasName && named != id {
			return httpapi.Peer{}, fmt.Errorf("%w: the certificate names node %d, but its key is node %d's", httpapi.ErrNotPeer, named, id)
		}
		p = httpapi.Peer{ID: id, Record: byID[id], Recorded: true}
		if p.Record.Status == join.NodeRetired {
			return httpapi.Peer{}, fmt.Errorf("%w: node %d was retired", httpapi.ErrNotPeer, id)
		}
	} else {
		// The lagging-node exception (see the file comment).
		if !hasName {
			return httpapi.Peer{}, fmt.Errorf("%w: no node of this network has this key", httpapi.ErrNotPeer)
		}
		if _, known := byID[named]; known {
			return httpapi.Peer{}, fmt.Errorf("%w: the certificate names node %d, which has another key", httpapi.ErrNotPeer, named)
		}
		if err := n.verifyServiceIssued(leaf, x509.ExtKeyUsageServerAuth); err != nil {
			return httpapi.Peer{}, fmt.Errorf("%w: no node of this network has this key, and the certificate is not a trusted node's: %v", httpapi.ErrNotPeer, err)
		}
		p = httpapi.Peer{ID: named}
	}
	if info, err := n.raft.NodeInfo(p.ID); err == nil {
		if info.Role == replication.RoleRemoved {
			return httpapi.Peer{}, fmt.Errorf("%w: node %d was removed", httpapi.ErrNotPeer, p.ID)
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
	if named, ok := identity.CertNodeID(leaf); !ok || named != id {
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
