package join

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/charterlog/charter/internal/attest"
)

// Path is the join protocol's one route: a joining node POSTs its Request
// there (internal/joinclient) and the leader answers a Response (the edge,
// internal/httpapi, mounts it over Leader.Join).
const Path = "/node/join"

// Request is what a joining node sends.
type Request struct {
	URL       string `json:"url"`
	NodeKey   []byte `json:"node_key"`  // PKIX DER of the node's P-256 key
	Evidence  []byte `json:"evidence"`  // attest.MarshalEvidence
	Signature []byte `json:"signature"` // ASN.1 ECDSA by the node key over digest
}

// digest is what a join request's signature covers: every field, each
// length-prefixed, under a label no other Charter signature uses.
func digest(u string, key, evidence []byte) []byte {
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

// Response is the leader's answer to a join request it admitted.
type Response struct {
	NodeID       uint64 `json:"node_id"`
	Status       string `json:"status"`
	NodeCert     string `json:"node_certificate"`
	NoteVerifier string `json:"note_verifier_key"`
	Sealed       []byte `json:"sealed_secrets,omitempty"`
}

// MaxRequest bounds a join request's body.
const MaxRequest = 256 << 10

// RequestBody is the body of a join request for a node at selfURL with
// key and the evidence (attest.MarshalEvidence) that binds it, signed by
// key.
func RequestBody(selfURL string, key *ecdsa.PrivateKey, evidence []byte) ([]byte, error) {
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest(selfURL, pub, evidence))
	if err != nil {
		return nil, err
	}
	return json.Marshal(Request{URL: selfURL, NodeKey: pub, Evidence: evidence, Signature: sig})
}

// ParseRequest checks a join request's shape and signature, and returns
// the node key and evidence it carries. Its errors are *Error of kind
// ErrInvalidRequest, ErrInvalidSignature or ErrInvalidEvidence.
func ParseRequest(body []byte) (*Request, *ecdsa.PublicKey, *attest.Evidence, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, nil, nil, refuse(ErrInvalidRequest, "join request: "+err.Error())
	}
	if u, err := url.Parse(req.URL); err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
		return nil, nil, nil, refuse(ErrInvalidRequest, "url must be https://HOST:PORT, where the network's nodes reach the joining node")
	}
	k, err := x509.ParsePKIXPublicKey(req.NodeKey)
	key, ok := k.(*ecdsa.PublicKey)
	if err != nil || !ok || key.Curve != elliptic.P256() {
		return nil, nil, nil, refuse(ErrInvalidRequest, "node_key must be a P-256 public key (PKIX DER, base64)")
	}
	if !ecdsa.VerifyASN1(key, digest(req.URL, req.NodeKey, req.Evidence), req.Signature) {
		return nil, nil, nil, refuse(ErrInvalidSignature, "the join request's signature does not verify with node_key: the node must sign with the key its evidence binds")
	}
	ev, err := attest.UnmarshalEvidence(req.Evidence)
	if err != nil {
		return nil, nil, nil, refuse(ErrInvalidEvidence, err.Error())
	}
	return &req, key, ev, nil
}

// Released is the plaintext sealed to a trusted node: the service's
// secrets.
type Released struct {
	ServiceKey   []byte `json:"service_key"` // PKCS#8 DER
	NoteKey      string `json:"note_key"`    // the note signer key
	LedgerSecret []byte `json:"ledger_secret"`
}

// SealSecrets seals s to the node id whose key and evidence (by its
// SHA-256) the leader verified: only that key opens it, and only for
// that id and evidence.
func SealSecrets(s *Released, key *ecdsa.PublicKey, id uint64, evidenceDigest [32]byte) ([]byte, error) {
	plain, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	return attest.SealSecrets(key, id, evidenceDigest, plain)
}

// OpenSecrets opens what SealSecrets sealed to key, as node id with
// evidence (attest.MarshalEvidence). The caller checks the secrets
// against the service it joined.
func OpenSecrets(key *ecdsa.PrivateKey, id uint64, evidence, sealed []byte) (*Released, error) {
	plain, err := attest.OpenSecrets(key, id, sha256.Sum256(evidence), sealed)
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	var s Released
	if err := json.Unmarshal(plain, &s); err != nil {
		return nil, fmt.Errorf("join: released secrets: %w", err)
	}
	return &s, nil
}
