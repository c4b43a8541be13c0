package node

// The node's part of the join protocol (internal/join): the leader
// answers POST /node/join through its join.Leader; a joining node asks
// (JoinNetwork, then awaitSecrets until it is trusted) and keeps what the
// answers give in its data directory.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/httpapi"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/internal/seal"
	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/registry"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/time/rate"
)

// attestationPolicy is what the network accepts now: the governed maps for
// the evidence's platform, and this node's verification settings.
func (n *Node) attestationPolicy(platform attest.Platform) (attest.Policy, error) {
	base := attest.Policy{Roots: n.amdRoots, CertCacheDir: n.cfg.Attestation.CertCacheDir,
		AllowNetwork: n.cfg.Attestation.AllowNetwork, MinTCB: n.cfg.Attestation.MinTCB}
	return join.ApprovedPolicy(base, platform, func(m string, keep func(hexKey string)) error {
		return n.ledger.ScanKV(m, func(k, _ []byte) error { keep(string(k)); return nil })
	})
}

// DefaultMaxPendingNodes is how many joined nodes may wait to become
// trusted voters at once, unless governance says otherwise
// (set_node_join_limits).
const DefaultMaxPendingNodes = join.DefaultMaxPendingNodes

// newJoinLeader is the leader's side of the protocol over this node's
// ledger and raft.
func (n *Node) newJoinLeader() *join.Leader {
	return &join.Leader{
		State: n.ledger, Raft: joinRaft{n.raft}, Log: n.log,
		Rate:   rate.NewLimiter(joinsPerSecond, joinBurst),
		Index:  n.peers.Index,
		Policy: n.attestationPolicy,
		IssueCert: func(key *ecdsa.PublicKey, id uint64) ([]byte, error) {
			return identity.IssueNodeCert(n.secrets(), key, id, "", false)
		},
		Secrets:      n.releasedSecrets,
		NoteVerifier: n.id.NoteVerifier,
	}
}

// joinRaft is raft's membership as join.Leader sees it.
type joinRaft struct{ *replication.Node }

func (r joinRaft) Member(id uint64) (join.Member, bool) {
	info, err := r.NodeInfo(id)
	if err != nil {
		return join.Member{}, false
	}
	return join.Member{URL: info.URL, Voter: info.Role == replication.RoleVoter, Removed: info.Role == replication.RoleRemoved}, true
}

func (r joinRaft) NodeIDs() ([]uint64, error) {
	nodes, err := r.Nodes()
	if err != nil {
		return nil, err
	}
	ids := make([]uint64, 0, len(nodes))
	for _, info := range nodes {
		ids = append(ids, info.ID)
	}
	return ids, nil
}

// releasedSecrets are the service's secrets, to seal to a trusted node.
func (n *Node) releasedSecrets() (*join.Released, error) {
	full := n.secrets()
	if !full.HasSecrets() {
		return nil, errors.New("this node does not hold the service's secrets to release")
	}
	der, err := x509.MarshalPKCS8PrivateKey(full.ServiceKey)
	if err != nil {
		return nil, err
	}
	return &join.Released{ServiceKey: der, NoteKey: full.NoteSignerKey(), LedgerSecret: full.LedgerSecret}, nil
}

// secrets is the identity with the service's secrets if this node holds
// them (at start, or since the network released them), else the public
// one.
func (n *Node) secrets() *identity.Identity {
	if f := n.full.Load(); f != nil {
		return f
	}
	return n.id
}

// joiner is the joining node's side: its key, evidence and request.
type joiner struct {
	url      string
	key      *ecdsa.PrivateKey
	body     []byte
	evidence []byte
	dir      string
	sealer   *seal.Sealer
}

func newJoiner(dir string, sealer *seal.Sealer, selfURL string, key *ecdsa.PrivateKey, ev *attest.Evidence) (*joiner, error) {
	raw, err := attest.MarshalEvidence(ev)
	if err != nil {
		return nil, err
	}
	body, err := join.RequestBody(selfURL, key, raw)
	if err != nil {
		return nil, err
	}
	return &joiner{url: selfURL, key: key, body: body, evidence: raw, dir: dir, sealer: sealer}, nil
}

// JoinRequestBody is the body of POST /node/join for a node at selfURL
// with key and the evidence that binds it, signed by key.
func JoinRequestBody(selfURL string, key *ecdsa.PrivateKey, ev *attest.Evidence) ([]byte, error) {
	raw, err := attest.MarshalEvidence(ev)
	if err != nil {
		return nil, err
	}
	return join.RequestBody(selfURL, key, raw)
}

// errRefused marks an answer that retrying will not change.
var errRefused = errors.New("join refused")

// ask sends the join request once and keeps what the answer gives: the node
// certificate and note verifier key, and the secrets once released.
func (j *joiner) ask(ctx context.Context, client *http.Client, target string) (*join.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(target, "/")+httpapi.PathJoin, bytes.NewReader(j.body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		p := registry.DecodeProblem(resp.StatusCode, b)
		err := fmt.Errorf("%s answered %s: %s: %s", target, resp.Status, p.Title, p.Detail)
		// 503 (no leader yet) and 429 (joins are rate-limited) pass.
		if resp.StatusCode != http.StatusServiceUnavailable && resp.StatusCode != http.StatusTooManyRequests {
			err = fmt.Errorf("%w: %w", errRefused, err)
		}
		return nil, err
	}
	var jr join.Response
	if err := json.Unmarshal(b, &jr); err != nil || jr.NodeID == 0 {
		return nil, fmt.Errorf("join: bad answer from %s: %q", target, b)
	}
	if _, err := note.NewVerifier(jr.NoteVerifier); err != nil {
		return nil, fmt.Errorf("join: %s sent a bad note verifier key: %v", target, err)
	}
	cert, err := identity.ParseCertPEM([]byte(jr.NodeCert))
	if pub, ok := publicKeyOf(cert); err != nil || !ok || !pub.Equal(&j.key.PublicKey) {
		return nil, fmt.Errorf("join: %s sent a node certificate that is not for this node's key", target)
	}
	if err := durable.WriteFile(filepath.Join(j.dir, identity.FileNodeCert), []byte(jr.NodeCert), 0o644); err != nil {
		return nil, err
	}
	if err := durable.WriteFile(filepath.Join(j.dir, identity.FileNoteVerifier), []byte(jr.NoteVerifier+"\n"), 0o644); err != nil {
		return nil, err
	}
	if len(jr.Sealed) > 0 {
		if err := j.keepSecrets(jr.NodeID, jr.Sealed, jr.NoteVerifier); err != nil {
			return nil, err
		}
	}
	return &jr, nil
}

func publicKeyOf(c *x509.Certificate) (*ecdsa.PublicKey, bool) {
	if c == nil {
		return nil, false
	}
	k, ok := c.PublicKey.(*ecdsa.PublicKey)
	return k, ok
}

// keepSecrets opens the secrets sealed to this node's key and keeps them
// in the data directory, sealed under its own sealing key, the service key
// last: its presence is what tells a restarting node it holds the secrets
// (identity.Load), so a crash part-way leaves a node that asks again.
func (j *joiner) keepSecrets(id uint64, sealed []byte, noteVerifier string) error {
	s, err := join.OpenSecrets(j.key, id, j.evidence, sealed)
	if err != nil {
		return err
	}
	k, err := x509.ParsePKCS8PrivateKey(s.ServiceKey)
	if err != nil {
		return fmt.Errorf("join: released service key: %w", err)
	}
	sk, ok := k.(*ecdsa.PrivateKey)
	certPEM, err := os.ReadFile(filepath.Join(j.dir, identity.FileServiceCert))
	if err != nil {
		return err
	}
	cert, err := identity.ParseCertPEM(certPEM)
	if pub, okc := publicKeyOf(cert); !ok || err != nil || !okc || !pub.Equal(&sk.PublicKey) {
		return errors.New("join: the released service key does not match the service certificate")
	}
	if len(s.LedgerSecret) != identity.LedgerSecretSize {
		return errors.New("join: the released ledger secret has the wrong size")
	}
	return identity.StoreReleased(j.dir, j.sealer, s.ServiceKey, s.NoteKey, noteVerifier, s.LedgerSecret)
}

// JoinNetwork asks the network at target to admit the node configured by
// cfg, and returns the node id it was given. The data directory must hold
// the network's service certificate (public: GET /node/network on any
// node), which the request pins; nothing secret is copied by hand. The
// node's evidence comes from cfg.Platform. It retries while the network
// answers 503 (no leader) or 429 (joins rate-limited), until ctx ends.
func JoinNetwork(ctx context.Context, cfg config.Config, target string) (uint64, error) {
	host, port, err := net.SplitHostPort(cfg.Addr)
	if err != nil || port == "0" || host == "" || net.ParseIP(host).IsUnspecified() {
		return 0, fmt.Errorf("join: addr %q must be the concrete host:port peers will reach this node at", cfg.Addr)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return 0, err
	}
	certPEM, err := os.ReadFile(filepath.Join(cfg.DataDir, identity.FileServiceCert))
	if err != nil {
		return 0, fmt.Errorf("join: put the network's service certificate (GET /node/network, service_certificate) in %s: %w", filepath.Join(cfg.DataDir, identity.FileServiceCert), err)
	}
	cert, err := identity.ParseCertPEM(certPEM)
	if err != nil {
		return 0, fmt.Errorf("join: %s: %w", identity.FileServiceCert, err)
	}
	sealer, err := openSealer(cfg)
	if err != nil {
		return 0, fmt.Errorf("join: %w", err)
	}
	key, err := identity.LoadOrCreateNodeKey(cfg.DataDir, sealer)
	if err != nil {
		return 0, fmt.Errorf("join: node key: %w", err)
	}
	ev, err := nodeEvidence(ctx, cfg.Platform, key)
	if err != nil {
		return 0, fmt.Errorf("join: attestation: %w", err)
	}
	j, err := newJoiner(cfg.DataDir, sealer, "https://"+cfg.Addr, key, ev)
	if err != nil {
		return 0, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	client := &http.Client{Transport: tr, Timeout: time.Minute}
	for {
		jr, err := j.ask(ctx, client, target)
		if err == nil {
			return jr.NodeID, nil
		}
		if errors.Is(err, errRefused) {
			return 0, err
		}
		if serr := sleep(ctx, 500*time.Millisecond); serr != nil {
			return 0, errors.Join(err, serr)
		}
	}
}

// awaitSecrets returns the full identity: at once if this node holds the
// secrets, else once the network releases them (the node is Trusted). It
// asks the leader every half second; the node follows the ledger meanwhile.
func (n *Node) awaitSecrets(ctx context.Context) (*identity.Identity, error) {
	if n.id.HasSecrets() {
		return n.id, nil
	}
	j, err := newJoiner(n.cfg.DataDir, n.sealer, n.URL(), n.nodeKey, n.evidence)
	if err != nil {
		return nil, err
	}
	logged := time.Time{}
	for {
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
		u, ok := n.raft.PeerURL(n.raft.LeaderID())
		if !ok {
			continue
		}
		jr, err := j.ask(ctx, n.peers.Client(n.raft.LeaderID()), u)
		switch {
		case err != nil:
			if time.Since(logged) > 10*time.Second {
				n.log.Warn("asking the leader for the service's secrets", "err", err)
				logged = time.Now()
			}
		case len(jr.Sealed) > 0:
			id, err := identity.LoadOrCreate(n.cfg.DataDir, "", false, n.sealer)
			if err != nil {
				return nil, err
			}
			n.log.Info("received the service's secrets: this node is trusted")
			return id, nil
		case time.Since(logged) > 10*time.Second:
			n.log.Info("waiting for governance to trust this node (transition_node_to_trusted)", "node_id", jr.NodeID, "status", jr.Status)
			logged = time.Now()
		}
	}
}

// genesisNodeWrites are the first node's part of a new network's
// governance state: its own record (Trusted, with its key and evidence, so
// peers know it by its key from the start and auditors can re-verify it),
// and, as CCF does for the node that starts a network, the approval of its
// own measurement so that nodes running the same code can join. A virtual
// measurement is approved only on a development network: elsewhere virtual
// evidence, which anyone can make, admits a node only by an explicit vote
// (add_virtual_measurement).
func (n *Node) genesisNodeWrites(development bool) ([]log.Write, error) {
	m, err := n.evidence.Measurement()
	if err != nil {
		return nil, err
	}
	v, err := attest.Verify(context.Background(), n.evidence, &n.nodeKey.PublicKey, attest.Policy{AllowVirtual: true, Roots: n.amdRoots,
		CertCacheDir: n.cfg.Attestation.CertCacheDir, AllowNetwork: n.cfg.Attestation.AllowNetwork, Measurements: [][]byte{m}})
	if err != nil {
		return nil, fmt.Errorf("this node's own evidence does not verify: %w", err)
	}
	raw, err := attest.MarshalEvidence(n.evidence)
	if err != nil {
		return nil, err
	}
	rec, err := json.Marshal(join.NewRecord(join.NodeTrusted, n.URL(), &n.nodeKey.PublicKey, n.evidence, raw, v))
	if err != nil {
		return nil, err
	}
	writes := []log.Write{{Map: govwire.MapNodesInfo, Key: []byte(strconv.FormatUint(n.cfg.NodeID, 10)), Value: rec}}
	switch {
	case v.Platform != attest.PlatformVirtual:
		writes = append(writes, log.Write{Map: govwire.MapSNPMeasurements, Key: []byte(hex.EncodeToString(v.Measurement)), Value: []byte("{}")})
	case development:
		writes = append(writes, log.Write{Map: govwire.MapVirtualMeasurements, Key: []byte(hex.EncodeToString(v.Measurement)), Value: []byte("{}")})
	}
	return writes, nil
}
