package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/attest/snptest"
	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/registry"
	"github.com/google/go-sev-guest/abi"
	sgtest "github.com/google/go-sev-guest/testing"
)

// snpJoiner plays a joining SEV-SNP node: its node key, and evidence from
// go-sev-guest's test signer and fake device. It speaks the join protocol
// as spec/operations.md defines it, independently of the node's code.
type snpJoiner struct {
	key *ecdsa.PrivateKey
	url string
}

func newSNPJoiner(t *testing.T) *snpJoiner {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing listens there: the leader adds it as a learner it cannot reach.
	return &snpJoiner{key: k, url: "https://127.0.0.1:" + strconv.Itoa(freeLoopbackPorts(t, 1)[0])}
}

func (j *snpJoiner) evidence(t *testing.T, s *sgtest.AmdSigner, r snptest.Report) []byte {
	t.Helper()
	ev, err := snptest.Evidence(context.Background(), s, &j.key.PublicKey, r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := attest.MarshalEvidence(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// request is the join request body: signed by signer over
// SHA-256("charter join v1\0" ‖ for each of url, node_key, evidence: its
// length as 8 bytes big-endian ‖ the field).
func (j *snpJoiner) request(t *testing.T, signer *ecdsa.PrivateKey, evidence []byte) []byte {
	t.Helper()
	pub, _ := x509.MarshalPKIXPublicKey(&signer.PublicKey)
	h := sha256.New()
	h.Write([]byte("charter join v1\x00"))
	for _, f := range [][]byte{[]byte(j.url), pub, evidence} {
		h.Write(binary.BigEndian.AppendUint64(nil, uint64(len(f))))
		h.Write(f)
	}
	sig, err := ecdsa.SignASN1(rand.Reader, signer, h.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]any{"url": j.url, "node_key": pub, "evidence": evidence, "signature": sig})
	return b
}

type joinAnswer struct {
	NodeID   uint64 `json:"node_id"`
	Status   string `json:"status"`
	NodeCert string `json:"node_certificate"`
	Sealed   []byte `json:"sealed_secrets"`
}

// postJoin sends a join request, waiting out the network's rate limit on
// new keys (429 with Retry-After) as charterd join does.
func postJoin(t *testing.T, n *node, body []byte) (*response, *joinAnswer) {
	t.Helper()
	var r *response
	for deadline := time.Now().Add(20 * time.Second); ; {
		var err error
		r, err = n.do(http.MethodPost, "/node/join", "application/json", body)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusTooManyRequests || time.Now().After(deadline) {
			break
		}
		// The server's rate limit says how long: waiting it out is the
		// protocol (as charterd join does), not a wait for a condition.
		wait, _ := strconv.Atoi(r.Header.Get("Retry-After"))
		time.Sleep(time.Duration(max(wait, 1)) * time.Second)
	}
	if r.Status != 200 {
		return r, nil
	}
	var a joinAnswer
	if err := json.Unmarshal(r.Body, &a); err != nil {
		t.Fatalf("join answer %s: %v", r.Body, err)
	}
	return r, &a
}

func quoteCount(t *testing.T, n *node) int {
	t.Helper()
	r := n.get(t, "/node/quotes")
	if r.Status != 200 {
		t.Fatalf("GET /node/quotes: %d %s", r.Status, r.Body)
	}
	var q struct{ Quotes []json.RawMessage }
	if err := json.Unmarshal(r.Body, &q); err != nil {
		t.Fatal(err)
	}
	return len(q.Quotes)
}

// A network that trusts an AMD root admits a SEV-SNP node with an approved
// measurement, once governance approves it, and refuses every other kind of
// evidence with its own reason and without writing anything; the secrets
// are released, sealed to the node's key, only once it is trusted; and
// `charter node verify-quotes` re-verifies every recorded evidence offline.
func TestJoinAttestationSNP(t *testing.T) {
	signer, err := snptest.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rootsPath := filepath.Join(dir, "amd_roots.pem")
	if err := os.WriteFile(rootsPath, snptest.KDSChain(signer), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, 1, clusterOpts{Attestation: config.Attestation{AMDRootsFile: rootsPath, AMDProductLine: snptest.ProductLine}})
	leader := c.node(1)
	waitUntil(t, 10*time.Second, "the first node records its own evidence", func() bool { return quoteCount(t, leader.node) >= 1 })

	measurement := bytes.Repeat([]byte{0x5a}, attest.MeasurementSize)
	good := snptest.Report{Policy: abi.SnpPolicy{SMT: true}, Measurement: measurement}
	j := newSNPJoiner(t)
	goodEvidence := j.evidence(t, signer, good)

	other, err := snptest.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	debug := good
	debug.Policy.Debug = true
	tampered := bytes.Clone(goodEvidence)
	{
		// Flip a bit of the report's measurement, inside the signed bytes.
		ev, _ := attest.UnmarshalEvidence(goodEvidence)
		ev.Report[0x90] ^= 1
		tampered, _ = attest.MarshalEvidence(ev)
	}
	stranger, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	refusals := []struct {
		name, want string
		body       []byte
	}{
		{"unapproved measurement", "measurement not approved", j.request(t, j.key, goodEvidence)},
		{"tampered report", "signature", j.request(t, j.key, tampered)},
		{"report_data for another key", "report_data does not bind", j.request(t, stranger, goodEvidence)},
		{"debug policy", "allows debugging", nil},
		{"another AMD root", "signature or certificate chain", j.request(t, j.key, j.evidence(t, other, good))},
	}
	// Approve the measurement first for the refusals that are about
	// something else, so that each is refused for its own reason.
	for i, tc := range refusals {
		if i == 1 {
			c.govAccept("add_snp_measurement", `{"measurement":"`+hex.EncodeToString(measurement)+`"}`)
		}
		if tc.body == nil {
			tc.body = j.request(t, j.key, j.evidence(t, signer, debug))
		}
		before := quoteCount(t, leader.node)
		nodesBefore := len(c.nodes(1))
		r, _ := postJoin(t, leader.node, tc.body)
		p := registry.DecodeProblem(r.Status, r.Body)
		if r.Status != http.StatusForbidden || p.Title != "AttestationFailed" || !strings.Contains(p.Detail, tc.want) {
			t.Errorf("%s: %d %s %q, want 403 AttestationFailed mentioning %q", tc.name, r.Status, p.Title, p.Detail, tc.want)
		}
		if got := quoteCount(t, leader.node); got != before {
			t.Errorf("%s: /node/quotes has %d entries after the refusal, %d before", tc.name, got, before)
		}
		if got := len(c.nodes(1)); got != nodesBefore {
			t.Errorf("%s: the network has %d nodes after the refusal, %d before", tc.name, got, nodesBefore)
		}
	}

	// With the measurement approved, the node joins; the service is open,
	// so it is Pending and receives nothing secret.
	_, a := postJoin(t, leader.node, j.request(t, j.key, goodEvidence))
	if a == nil || a.Status != "Pending" || len(a.Sealed) != 0 {
		t.Fatalf("approved join: %+v, want Pending without secrets", a)
	}
	cert, _ := pem.Decode([]byte(a.NodeCert))
	if cert == nil {
		t.Fatalf("no node certificate in %+v", a)
	}
	if nc, err := x509.ParseCertificate(cert.Bytes); err != nil || !nc.PublicKey.(*ecdsa.PublicKey).Equal(&j.key.PublicKey) {
		t.Fatalf("the node certificate is not for the node's key: %v", err)
	}
	// Once trusted, the same request gets the secrets, sealed to its key.
	c.govAccept("transition_node_to_trusted", `{"node_id":"`+strconv.FormatUint(a.NodeID, 10)+`"}`)
	_, a2 := postJoin(t, leader.node, j.request(t, j.key, goodEvidence))
	if a2 == nil || a2.NodeID != a.NodeID || a2.Status != "Trusted" || len(a2.Sealed) == 0 {
		t.Fatalf("trusted join: %+v, want the same id, Trusted, with secrets", a2)
	}
	plain, err := attest.OpenSecrets(j.key, a.NodeID, sha256.Sum256(goodEvidence), a2.Sealed)
	if err != nil {
		t.Fatalf("opening the released secrets: %v", err)
	}
	var secrets struct {
		ServiceKey []byte `json:"service_key"`
	}
	if err := json.Unmarshal(plain, &secrets); err != nil {
		t.Fatal(err)
	}
	sk, err := x509.ParsePKCS8PrivateKey(secrets.ServiceKey)
	if err != nil {
		t.Fatal(err)
	}
	svcCert, _ := pem.Decode(mustRead(t, c.certPath))
	sc, _ := x509.ParseCertificate(svcCert.Bytes)
	if !sc.PublicKey.(*ecdsa.PublicKey).Equal(sk.(*ecdsa.PrivateKey).Public()) {
		t.Fatal("the released service key is not the service certificate's")
	}
	if _, err := attest.OpenSecrets(stranger, a.NodeID, sha256.Sum256(goodEvidence), a2.Sealed); err == nil {
		t.Fatal("the sealed secrets open with another key")
	}

	// Removing the measurement refuses new joins with it.
	c.govAccept("remove_snp_measurement", `{"measurement":"`+hex.EncodeToString(measurement)+`"}`)
	j2 := newSNPJoiner(t)
	r, _ := postJoin(t, leader.node, j2.request(t, j2.key, j2.evidence(t, signer, good)))
	if p := registry.DecodeProblem(r.Status, r.Body); r.Status != 403 || !strings.Contains(p.Detail, "measurement not approved") {
		t.Fatalf("join after remove_snp_measurement: %d %q", r.Status, p.Detail)
	}

	// Virtual nodes are refused once governance withdraws the virtual
	// measurement the network started with.
	var q struct {
		Quotes []struct {
			Platform    string
			Measurement string
		}
	}
	if err := json.Unmarshal(leader.get(t, "/node/quotes").Body, &q); err != nil {
		t.Fatal(err)
	}
	if len(q.Quotes) != 2 || q.Quotes[0].Platform != "virtual" || q.Quotes[1].Platform != "sev-snp" {
		t.Fatalf("/node/quotes: %+v, want the virtual first node and the SNP node", q.Quotes)
	}
	c.govAccept("remove_virtual_measurement", `{"measurement":"`+q.Quotes[0].Measurement+`"}`)
	vk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	vev, err := attest.NewVirtualProvider(bytes.Repeat([]byte{1}, 48), nil).Evidence(context.Background(), &vk.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	vraw, _ := attest.MarshalEvidence(vev)
	vj := &snpJoiner{key: vk, url: j2.url}
	r, _ = postJoin(t, leader.node, vj.request(t, vk, vraw))
	if p := registry.DecodeProblem(r.Status, r.Body); r.Status != 403 || !strings.Contains(p.Detail, "virtual platform not allowed") {
		t.Fatalf("virtual join when not allowed: %d %q", r.Status, p.Detail)
	}

	// Every recorded evidence verifies again, offline, against the
	// approvals in force where it was recorded.
	out, err := exec.Command(charterCLI, "node", "verify-quotes", "--url", leader.URL, "--cacert", c.certPath,
		"--amd-roots", rootsPath, "--amd-product-line", snptest.ProductLine).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "2 evidence records") || !strings.Contains(string(out), "0 failed") {
		t.Fatalf("charter node verify-quotes: %v\n%s", err, out)
	}
	// Without the test root, the SNP evidence does not verify.
	out, err = exec.Command(charterCLI, "node", "verify-quotes", "--url", leader.URL, "--cacert", c.certPath).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "FAIL node 2") {
		t.Fatalf("verify-quotes with AMD's real roots accepted test evidence: %v\n%s", err, out)
	}
}
