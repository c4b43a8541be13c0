package node

// The join protocol: a node proves its code by attestation before it holds
// any of the service's secrets (spec/operations.md, "Joining a node").
//
//  1. The joining node makes its node key and evidence binding it
//     (report_data = SHA-256 of the key), and sends POST /node/join
//     {url, node_key, evidence, signature} over TLS, pinning the service
//     certificate. The signature, by the node key, proves it holds the key
//     the evidence binds.
//  2. The leader verifies the evidence against what governance approved
//     (public:ccf.gov.nodes.{snp,virtual}.measurements, snp.host_data) and
//     its operator's verification settings. A refusal is 403 with the
//     reason, and nothing is written.
//  3. A first join records the node in public:ccf.gov.nodes.info (Pending,
//     or Trusted while the service is still opening; with its key and its
//     evidence, so auditors can re-verify it) in one ledger transaction,
//     then adds it to raft as a learner: it follows the ledger. The answer
//     carries its id, its status and a TLS certificate issued by the
//     service key for its key.
//  4. Once the node is Trusted (transition_node_to_trusted), the answer also
//     carries the service key, the note key and the ledger secret sealed to
//     its node key (HPKE, attest.SealSecrets), and the leader records the
//     release. Only then may the node vote, and so lead and sign
//     checkpoints.
//
// The joining node repeats the request, with the same key, until it holds
// the secrets; every repetition is verified again.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/durable"
	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/log"
	"github.com/charterlog/charter/registry"
	"golang.org/x/mod/sumdb/note"
)

// joinRequest is what a joining node sends.
type joinRequest struct {
	URL       string `json:"url"`
	NodeKey   []byte `json:"node_key"`  // PKIX DER of the node's P-256 key
	Evidence  []byte `json:"evidence"`  // attest.MarshalEvidence
	Signature []byte `json:"signature"` // ASN.1 ECDSA by the node key over joinDigest
}

// joinDigest is what a join request's signature covers: every field, each
// length-prefixed, under a label no other Charter signature uses.
func joinDigest(u string, key, evidence []byte) []byte {
	h := sha256.New()
	h.Write([]byte("charter join v1\x00"))
	for _, f := range [][]byte{[]byte(u), key, evidence} {
		var l [8]byte
		binary.BigEndian.PutUint64(l[:], uint64(len(f)))
		h.Write(l[:])
		h.Write(f)
	}
	return h.Sum(nil)
}

type joinResponse struct {
	NodeID       uint64 `json:"node_id"`
	Status       string `json:"status"`
	NodeCert     string `json:"node_certificate"`
	NoteVerifier string `json:"note_verifier_key"`
	Sealed       []byte `json:"sealed_secrets,omitempty"`
}

// Node states in public:ccf.gov.nodes.info (CCF's).
const (
	NodePending = "Pending"
	NodeTrusted = "Trusted"
	NodeRetired = "Retired"
)

// NodeRecord is a node's entry in public:ccf.gov.nodes.info. Governance
// writes Status (transition_node_to_trusted, remove_node) and keeps the
// other fields; the leader writes the rest when the node joins.
type NodeRecord struct {
	Status          string     `json:"status"`
	URL             string     `json:"url,omitempty"`
	PublicKey       string     `json:"public_key,omitempty"` // PEM
	QuoteInfo       *QuoteInfo `json:"quote_info,omitempty"`
	Measurement     string     `json:"measurement,omitempty"` // hex
	HostData        string     `json:"host_data,omitempty"`   // hex
	Joined          bool       `json:"joined,omitempty"`
	SecretsReleased bool       `json:"secrets_released,omitempty"`
}

// QuoteInfo is a node's evidence as recorded (CCF's field name).
type QuoteInfo struct {
	Format   string `json:"format"`   // attest.Platform
	Evidence []byte `json:"evidence"` // attest.MarshalEvidence, base64 in JSON
}

// releasedSecrets is the plaintext sealed to a trusted node.
type releasedSecrets struct {
	ServiceKey   []byte `json:"service_key"` // PKCS#8 DER
	NoteKey      string `json:"note_key"`    // the note signer key
	LedgerSecret []byte `json:"ledger_secret"`
}

const maxJoinRequest = 256 << 10

func joinProblem(status int, title, detail string) *registry.Problem {
	return &registry.Problem{Status: status, Title: title, Detail: detail}
}

// parseJoinRequest checks a join request's shape and signature, and returns
// the node key and evidence it carries.
func parseJoinRequest(body []byte) (*joinRequest, *ecdsa.PublicKey, *attest.Evidence, *registry.Problem) {
	var req joinRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, nil, nil, joinProblem(http.StatusBadRequest, "InvalidInput", "join request: "+err.Error())
	}
	if u, err := url.Parse(req.URL); err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
		return nil, nil, nil, joinProblem(http.StatusBadRequest, "InvalidInput", "url must be https://HOST:PORT, where the network's nodes reach the joining node")
	}
	k, err := x509.ParsePKIXPublicKey(req.NodeKey)
	key, ok := k.(*ecdsa.PublicKey)
	if err != nil || !ok || key.Curve != elliptic.P256() {
		return nil, nil, nil, joinProblem(http.StatusBadRequest, "InvalidInput", "node_key must be a P-256 public key (PKIX DER, base64)")
	}
	if !ecdsa.VerifyASN1(key, joinDigest(req.URL, req.NodeKey, req.Evidence), req.Signature) {
		return nil, nil, nil, joinProblem(http.StatusBadRequest, "InvalidSignature", "the join request's signature does not verify with node_key: the node must sign with the key its evidence binds")
	}
	ev, err := attest.UnmarshalEvidence(req.Evidence)
	if err != nil {
		return nil, nil, nil, joinProblem(http.StatusBadRequest, "InvalidEvidence", err.Error())
	}
	return &req, key, ev, nil
}

// attestationPolicy is what the network accepts now: the governed maps for
// the evidence's platform, and this node's verification settings.
func (n *Node) attestationPolicy(platform attest.Platform) (attest.Policy, error) {
	base := attest.Policy{Roots: n.amdRoots, CertCacheDir: n.cfg.Attestation.CertCacheDir,
		AllowNetwork: n.cfg.Attestation.AllowNetwork, MinTCB: n.cfg.Attestation.MinTCB}
	return ApprovedPolicy(base, platform, func(m string, keep func(hexKey string)) error {
		return n.ledger.ScanKV(m, func(k, _ []byte) error { keep(string(k)); return nil })
	})
}

// ApprovedPolicy is what the network accepts for evidence of platform:
// base (the verifier's own settings) with the approvals governance keeps
// for that platform — virtual measurements for the virtual platform (which
// is accepted only while there is one), SNP measurements and host data
// otherwise. scan calls keep with every key (hex) of a governed map; keys
// of the wrong size are ignored. The node uses it on its state, and
// `charter node verify-quotes` on the state an audited ledger replays to.
func ApprovedPolicy(base attest.Policy, platform attest.Platform, scan func(m string, keep func(hexKey string)) error) (attest.Policy, error) {
	approved := func(m string, size int) ([][]byte, error) {
		var out [][]byte
		err := scan(m, func(k string) {
			if b, err := hex.DecodeString(k); err == nil && len(b) == size {
				out = append(out, b)
			}
		})
		return out, err
	}
	p := base
	var err error
	switch platform {
	case attest.PlatformVirtual:
		p.Measurements, err = approved(gov.MapVirtualMeasurements, attest.MeasurementSize)
		p.AllowVirtual = len(p.Measurements) > 0
	default:
		p.Measurements, err = approved(gov.MapSNPMeasurements, attest.MeasurementSize)
		if err == nil {
			p.HostData, err = approved(gov.MapSNPHostData, attest.HostDataSize)
		}
	}
	return p, err
}

// verifyEvidence checks a node's evidence against what the network accepts.
func (n *Node) verifyEvidence(ctx context.Context, ev *attest.Evidence, key *ecdsa.PublicKey) (*attest.Verified, error) {
	p, err := n.attestationPolicy(ev.Platform)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return attest.Verify(ctx, ev, key, p)
}

func attestationProblem(err error) *registry.Problem {
	detail := err.Error()
	switch {
	case errors.Is(err, attest.ErrMeasurement):
		detail += "; members approve a measurement with add_snp_measurement (add_virtual_measurement for the virtual platform)"
	case errors.Is(err, attest.ErrHostData):
		detail += "; members approve host data with add_snp_host_data"
	case errors.Is(err, attest.ErrVirtualNotAllowed):
		detail += "; this network accepts virtual nodes only while governance approves a virtual measurement (add_virtual_measurement)"
	case errors.Is(err, attest.ErrSignature):
		detail += "; the report must be signed by a VCEK or VLEK chained to the AMD root this network trusts"
	case errors.Is(err, attest.ErrMalformed), errors.Is(err, attest.ErrPlatform), errors.Is(err, attest.ErrReportData),
		errors.Is(err, attest.ErrDebug), errors.Is(err, attest.ErrGuestPolicy), errors.Is(err, attest.ErrVMPL), errors.Is(err, attest.ErrTCB):
	default:
		return registry.ProblemFor(err)
	}
	return joinProblem(http.StatusForbidden, "AttestationFailed", detail)
}

// nodeRecords reads public:ccf.gov.nodes.info.
func (n *Node) nodeRecords() (map[uint64]NodeRecord, error) {
	out := map[uint64]NodeRecord{}
	err := n.ledger.ScanKV(gov.MapNodesInfo, func(k, v []byte) error {
		id, err := strconv.ParseUint(string(k), 10, 64)
		if err != nil {
			return nil
		}
		var r NodeRecord
		if json.Unmarshal(v, &r) == nil {
			out[id] = r
		}
		return nil
	})
	return out, err
}

func (n *Node) nodeRecord(id uint64) (NodeRecord, bool) {
	raw, err := n.ledger.GetKV(gov.MapNodesInfo, []byte(strconv.FormatUint(id, 10)))
	var r NodeRecord
	if err != nil || json.Unmarshal(raw, &r) != nil {
		return r, false
	}
	return r, true
}

func (n *Node) writeNodeRecord(ctx context.Context, id uint64, r NodeRecord, claims []byte) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = n.ledger.SubmitWrites(ctx, &log.WriteSet{
		Writes: []log.Write{{Map: gov.MapNodesInfo, Key: []byte(strconv.FormatUint(id, 10)), Value: v}},
		Claims: claims,
	})
	return err
}

func (n *Node) serviceOpen() bool {
	var svc gov.ServiceInfo
	raw, err := n.ledger.GetKV(gov.MapServiceInfo, []byte(gov.KeyService))
	return err == nil && json.Unmarshal(raw, &svc) == nil && svc.Status == gov.ServiceOpen
}

func publicKeyPEM(k *ecdsa.PublicKey) string {
	der, _ := x509.MarshalPKIXPublicKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// newNodeRecord is the record of a node whose evidence verified.
func newNodeRecord(status, u string, key *ecdsa.PublicKey, ev *attest.Evidence, raw []byte, v *attest.Verified) NodeRecord {
	return NodeRecord{
		Status: status, URL: u, PublicKey: publicKeyPEM(key),
		QuoteInfo:   &QuoteInfo{Format: string(ev.Platform), Evidence: raw},
		Measurement: hex.EncodeToString(v.Measurement), HostData: hex.EncodeToString(v.HostData),
	}
}

// postJoin is the leader's side of the protocol (steps 2–4).
func (n *Node) postJoin(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxJoinRequest+1))
	if err != nil {
		registry.WriteProblem(w, joinProblem(http.StatusBadRequest, "InvalidInput", "reading the join request: "+err.Error()))
		return
	}
	if len(body) > maxJoinRequest {
		registry.WriteProblem(w, joinProblem(http.StatusRequestEntityTooLarge, "PayloadTooLarge", fmt.Sprintf("a join request is at most %d bytes", maxJoinRequest)))
		return
	}
	req, key, ev, p := parseJoinRequest(body)
	if p != nil {
		registry.WriteProblem(w, p)
		return
	}
	if leader, _ := n.raft.Leader(); !leader {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "NotLeader",
			Detail: fmt.Sprintf("send the join request to the leader (node %d)", n.raft.LeaderID()), RetryAfter: 1})
		return
	}
	// Joins cost the joiner, not the network: a key the network does not
	// know yet is admitted at a bounded rate, checked before its evidence
	// costs a verification; a known key (a node asking again for its
	// secrets) is not counted.
	byKey, _, err := n.peerIndex()
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	_, known := byKey[publicKeyPEM(key)]
	if !known && !n.joinRate.Allow() {
		registry.WriteProblem(w, &registry.Problem{Status: http.StatusTooManyRequests, Title: "TooManyRequests",
			Detail: fmt.Sprintf("joins of new nodes are limited to %v per second (burst %d); retry later", float64(n.joinRate.Limit()), n.joinRate.Burst()), RetryAfter: 1})
		return
	}
	verified, err := n.verifyEvidence(r.Context(), ev, key)
	if err != nil {
		n.log.Warn("refused a joining node's evidence", "url", req.URL, "platform", ev.Platform, "err", err)
		registry.WriteProblem(w, attestationProblem(err))
		return
	}
	// One join at a time: the next id and the record are a read-modify-write.
	n.joinMu.Lock()
	defer n.joinMu.Unlock()
	if !known {
		pending, limit, err := n.pendingJoins()
		if err != nil {
			registry.WriteProblem(w, registry.ProblemFor(err))
			return
		}
		if pending >= limit {
			registry.WriteProblem(w, &registry.Problem{Status: http.StatusTooManyRequests, Title: "TooManyPendingNodes",
				Detail: fmt.Sprintf("%d nodes have joined and are not yet trusted voters, the most this network allows (set_node_join_limits); retry once governance trusts or removes one", pending), RetryAfter: 5})
			return
		}
	}
	id, rec, p := n.admit(r.Context(), req, key, ev, verified, body)
	if p != nil {
		registry.WriteProblem(w, p)
		return
	}
	// Client-only until trusted: the node issues its own server
	// certificate once it holds the service key.
	certDER, err := issueNodeCert(n.secrets(), key, id, "", false)
	if err != nil {
		registry.WriteProblem(w, registry.ProblemFor(err))
		return
	}
	resp := joinResponse{NodeID: id, Status: rec.Status, NoteVerifier: n.id.NoteVerifier,
		NodeCert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}))}
	if rec.Status == NodeTrusted {
		sealed, err := n.sealSecrets(key, id, sha256.Sum256(req.Evidence))
		if err != nil {
			registry.WriteProblem(w, registry.ProblemFor(err))
			return
		}
		if !rec.SecretsReleased {
			// Recorded before the answer: a node may vote only once the
			// ledger says it was given the keys to lead with.
			rec.SecretsReleased = true
			if err := n.writeNodeRecord(r.Context(), id, rec, nil); err != nil {
				registry.WriteProblem(w, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", Detail: err.Error(), RetryAfter: 1})
				return
			}
			n.log.Info("released the service's secrets to a trusted node", "node_id", id)
		}
		resp.Sealed = sealed
	}
	writeJSON(w, http.StatusOK, resp)
}

// DefaultMaxPendingNodes is how many joined nodes may wait to become
// trusted voters at once, unless governance says otherwise
// (set_node_join_limits).
const DefaultMaxPendingNodes = 4

// pendingJoins counts the nodes that joined and are not yet voters (nor
// retired or removed), and returns the governed bound on them.
func (n *Node) pendingJoins() (int, int, error) {
	limit := DefaultMaxPendingNodes
	if raw, err := n.ledger.GetKV(gov.MapNodeJoinLimits, []byte("limits")); err == nil {
		var l struct {
			MaxPendingNodes int `json:"max_pending_nodes"`
		}
		if json.Unmarshal(raw, &l) == nil && l.MaxPendingNodes > 0 {
			limit = l.MaxPendingNodes
		}
	}
	_, recs, err := n.peerIndex()
	if err != nil {
		return 0, 0, err
	}
	pending := 0
	for id, rec := range recs {
		if rec.Status == NodeRetired {
			continue
		}
		info, err := n.raft.NodeInfo(id)
		if err == nil && (info.Role == replication.RoleVoter || info.Role == replication.RoleRemoved) {
			continue
		}
		pending++
	}
	return pending, limit, nil
}

// admit records a verified joining node, or finds it if it joined before
// (same node key), and makes sure raft has it as a learner.
func (n *Node) admit(ctx context.Context, req *joinRequest, key *ecdsa.PublicKey, ev *attest.Evidence, v *attest.Verified, body []byte) (uint64, NodeRecord, *registry.Problem) {
	recs, err := n.nodeRecords()
	if err != nil {
		return 0, NodeRecord{}, registry.ProblemFor(err)
	}
	nodes, err := n.raft.Nodes()
	if err != nil {
		return 0, NodeRecord{}, registry.ProblemFor(err)
	}
	keyPEM := publicKeyPEM(key)
	var id uint64
	var rec NodeRecord
	next := uint64(1)
	for rid, r := range recs {
		next = max(next, rid+1)
		if r.PublicKey == keyPEM {
			id, rec = rid, r
		}
	}
	for _, info := range nodes {
		next = max(next, info.ID+1)
	}
	switch {
	case id != 0 && rec.Status == NodeRetired:
		return 0, rec, joinProblem(http.StatusForbidden, "NodeRetired", fmt.Sprintf("node %d, which has this key, was removed from the network; start a new node with a new data directory", id))
	case id != 0 && rec.URL != req.URL:
		return 0, rec, joinProblem(http.StatusConflict, "Conflict", fmt.Sprintf("node %d has this key at %s; a node keeps its address", id, rec.URL))
	case id == 0:
		id = next
		status := NodePending
		if !n.serviceOpen() {
			status = NodeTrusted
		}
		rec = newNodeRecord(status, req.URL, key, ev, req.Evidence, v)
		rec.Joined = true
		// The claims are the join request itself: the ledger shows what the
		// node presented.
		if err := n.writeNodeRecord(ctx, id, rec, body); err != nil {
			return 0, rec, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", Detail: err.Error(), RetryAfter: 1}
		}
		n.log.Info("recorded a joining node", "node_id", id, "url", req.URL, "platform", ev.Platform, "measurement", rec.Measurement, "status", status)
	}
	if info, err := n.raft.NodeInfo(id); err == nil && info.Role != replication.RoleRemoved {
		return id, rec, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := n.raft.AddLearner(ctx, id, req.URL); err != nil {
		return 0, rec, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", Detail: err.Error(), RetryAfter: 1}
	}
	for {
		if info, err := n.raft.NodeInfo(id); err == nil && info.URL == req.URL {
			break
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return 0, rec, &registry.Problem{Status: http.StatusServiceUnavailable, Title: "ServiceUnavailable", Detail: "the configuration change did not commit in time; retry", RetryAfter: 1}
		}
	}
	n.log.Info("added learner", "node_id", id, "url", req.URL)
	return id, rec, nil
}

func (n *Node) sealSecrets(key *ecdsa.PublicKey, id uint64, evidenceDigest [32]byte) ([]byte, error) {
	full := n.secrets()
	if !full.HasSecrets() {
		return nil, errors.New("this node does not hold the service's secrets to release")
	}
	der, err := x509.MarshalPKCS8PrivateKey(full.ServiceKey)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(releasedSecrets{ServiceKey: der, NoteKey: full.noteSignerKey, LedgerSecret: full.LedgerSecret})
	if err != nil {
		return nil, err
	}
	return attest.SealSecrets(key, id, evidenceDigest, plain)
}

// secrets is the identity with the service's secrets if this node holds
// them (at start, or since the network released them), else the public
// one.
func (n *Node) secrets() *Identity {
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
}

func newJoiner(dir, selfURL string, key *ecdsa.PrivateKey, ev *attest.Evidence) (*joiner, error) {
	raw, err := attest.MarshalEvidence(ev)
	if err != nil {
		return nil, err
	}
	body, err := joinRequestBody(selfURL, key, raw)
	if err != nil {
		return nil, err
	}
	return &joiner{url: selfURL, key: key, body: body, evidence: raw, dir: dir}, nil
}

// JoinRequestBody is the body of POST /node/join for a node at selfURL
// with key and the evidence that binds it, signed by key.
func JoinRequestBody(selfURL string, key *ecdsa.PrivateKey, ev *attest.Evidence) ([]byte, error) {
	raw, err := attest.MarshalEvidence(ev)
	if err != nil {
		return nil, err
	}
	return joinRequestBody(selfURL, key, raw)
}

func joinRequestBody(selfURL string, key *ecdsa.PrivateKey, raw []byte) ([]byte, error) {
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sig, err := ecdsa.SignASN1(rand.Reader, key, joinDigest(selfURL, pub, raw))
	if err != nil {
		return nil, err
	}
	return json.Marshal(joinRequest{URL: selfURL, NodeKey: pub, Evidence: raw, Signature: sig})
}

// errRefused marks an answer that retrying will not change.
var errRefused = errors.New("join refused")

// ask sends the join request once and keeps what the answer gives: the node
// certificate and note verifier key, and the secrets once released.
func (j *joiner) ask(ctx context.Context, client *http.Client, target string) (*joinResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(target, "/")+pathJoin, bytes.NewReader(j.body))
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
	var jr joinResponse
	if err := json.Unmarshal(b, &jr); err != nil || jr.NodeID == 0 {
		return nil, fmt.Errorf("join: bad answer from %s: %q", target, b)
	}
	if _, err := note.NewVerifier(jr.NoteVerifier); err != nil {
		return nil, fmt.Errorf("join: %s sent a bad note verifier key: %v", target, err)
	}
	cert, err := parseCertPEM([]byte(jr.NodeCert))
	if pub, ok := publicKeyOf(cert); err != nil || !ok || !pub.Equal(&j.key.PublicKey) {
		return nil, fmt.Errorf("join: %s sent a node certificate that is not for this node's key", target)
	}
	if err := durable.WriteFile(filepath.Join(j.dir, fileNodeCert), []byte(jr.NodeCert), 0o644); err != nil {
		return nil, err
	}
	if err := durable.WriteFile(filepath.Join(j.dir, fileNoteVerifier), []byte(jr.NoteVerifier+"\n"), 0o644); err != nil {
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

// keepSecrets opens the sealed secrets and writes them to the data
// directory, the service key last: its presence is what tells a restarting
// node it holds the secrets (loadIdentity), so a crash part-way leaves a
// node that asks again.
func (j *joiner) keepSecrets(id uint64, sealed []byte, noteVerifier string) error {
	plain, err := attest.OpenSecrets(j.key, id, sha256.Sum256(j.evidence), sealed)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	var s releasedSecrets
	if err := json.Unmarshal(plain, &s); err != nil {
		return fmt.Errorf("join: released secrets: %w", err)
	}
	k, err := x509.ParsePKCS8PrivateKey(s.ServiceKey)
	if err != nil {
		return fmt.Errorf("join: released service key: %w", err)
	}
	sk, ok := k.(*ecdsa.PrivateKey)
	certPEM, err := os.ReadFile(filepath.Join(j.dir, fileServiceCert))
	if err != nil {
		return err
	}
	cert, err := parseCertPEM(certPEM)
	if pub, okc := publicKeyOf(cert); !ok || err != nil || !okc || !pub.Equal(&sk.PublicKey) {
		return errors.New("join: the released service key does not match the service certificate")
	}
	if len(s.LedgerSecret) != ledgerSecretSize {
		return errors.New("join: the released ledger secret has the wrong size")
	}
	if err := durable.WriteFile(filepath.Join(j.dir, fileNoteKey), []byte(s.NoteKey+"\n"+noteVerifier+"\n"), 0o600); err != nil {
		return err
	}
	if err := durable.WriteFile(filepath.Join(j.dir, fileLedgerSecret), s.LedgerSecret, 0o600); err != nil {
		return err
	}
	return durable.WriteFile(filepath.Join(j.dir, fileServiceKey), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: s.ServiceKey}), 0o600)
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
	certPEM, err := os.ReadFile(filepath.Join(cfg.DataDir, fileServiceCert))
	if err != nil {
		return 0, fmt.Errorf("join: put the network's service certificate (GET /node/network, service_certificate) in %s: %w", filepath.Join(cfg.DataDir, fileServiceCert), err)
	}
	cert, err := parseCertPEM(certPEM)
	if err != nil {
		return 0, fmt.Errorf("join: %s: %w", fileServiceCert, err)
	}
	key, err := loadOrCreateNodeKey(cfg.DataDir)
	if err != nil {
		return 0, fmt.Errorf("join: node key: %w", err)
	}
	ev, err := nodeEvidence(ctx, cfg.Platform, key)
	if err != nil {
		return 0, fmt.Errorf("join: attestation: %w", err)
	}
	j, err := newJoiner(cfg.DataDir, "https://"+cfg.Addr, key, ev)
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
func (n *Node) awaitSecrets(ctx context.Context) (*Identity, error) {
	if n.id.HasSecrets() {
		return n.id, nil
	}
	j, err := newJoiner(n.cfg.DataDir, n.URL(), n.nodeKey, n.evidence)
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
		jr, err := j.ask(ctx, n.peerClientFor(n.raft.LeaderID()), u)
		switch {
		case err != nil:
			if time.Since(logged) > 10*time.Second {
				n.log.Warn("asking the leader for the service's secrets", "err", err)
				logged = time.Now()
			}
		case len(jr.Sealed) > 0:
			id, err := loadOrCreateIdentity(n.cfg.DataDir, "", false)
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
	rec, err := json.Marshal(newNodeRecord(NodeTrusted, n.URL(), &n.nodeKey.PublicKey, n.evidence, raw, v))
	if err != nil {
		return nil, err
	}
	writes := []log.Write{{Map: gov.MapNodesInfo, Key: []byte(strconv.FormatUint(n.cfg.NodeID, 10)), Value: rec}}
	switch {
	case v.Platform != attest.PlatformVirtual:
		writes = append(writes, log.Write{Map: gov.MapSNPMeasurements, Key: []byte(hex.EncodeToString(v.Measurement)), Value: []byte("{}")})
	case development:
		writes = append(writes, log.Write{Map: gov.MapVirtualMeasurements, Key: []byte(hex.EncodeToString(v.Measurement)), Value: []byte("{}")})
	}
	return writes, nil
}
