package e2e

import (
	"context"
	"crypto"
	"crypto/sha512"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/charterlog/charter/internal/attest"
)

// A node's evidence binds the key it serves TLS with, and on the virtual
// platform declares the SHA-384 of the charterd binary it runs.
func TestQuoteSelf(t *testing.T) {
	n := startNode(t, t.TempDir())
	resp, err := n.Client.Get(n.URL + "/node/quotes/self")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /node/quotes/self: %s", resp.Status)
	}
	var q struct {
		Platform string `json:"platform"`
		Evidence []byte `json:"evidence"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&q); err != nil {
		t.Fatal(err)
	}
	ev, err := attest.UnmarshalEvidence(q.Evidence)
	if err != nil {
		t.Fatal(err)
	}
	tlsKey := peerKey(t, resp.TLS)
	f, err := os.Open(charterd)
	if err != nil {
		t.Fatal(err)
	}
	h := sha512.New384()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	approved := attest.Policy{AllowVirtual: true, Measurements: [][]byte{h.Sum(nil)}}
	v, err := attest.Verify(context.Background(), ev, tlsKey, approved)
	if err != nil {
		t.Fatalf("the node's evidence does not verify for its TLS key and binary: %v", err)
	}
	if v.Platform != attest.PlatformVirtual || q.Platform != "virtual" {
		t.Fatalf("platform %q / %q, want virtual", v.Platform, q.Platform)
	}
	// Not where virtual nodes are refused, nor for another binary.
	if _, err := attest.Verify(context.Background(), ev, tlsKey, attest.Policy{Measurements: approved.Measurements}); !errors.Is(err, attest.ErrVirtualNotAllowed) {
		t.Fatalf("virtual evidence without AllowVirtual: %v", err)
	}
	other := attest.Policy{AllowVirtual: true, Measurements: [][]byte{make([]byte, 48)}}
	if _, err := attest.Verify(context.Background(), ev, tlsKey, other); !errors.Is(err, attest.ErrMeasurement) {
		t.Fatalf("evidence against another measurement: %v", err)
	}
	// The node key survives a restart, so the evidence keeps naming it.
	n.Stop()
	n2 := startNode(t, n.Dir)
	resp2, err := n2.Client.Get(n2.URL + "/node/health")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if !peerKey(t, resp2.TLS).(interface{ Equal(crypto.PublicKey) bool }).Equal(tlsKey) {
		t.Fatal("the node's TLS key changed across a restart")
	}
}

func peerKey(t *testing.T, cs *tls.ConnectionState) any {
	t.Helper()
	if cs == nil || len(cs.PeerCertificates) == 0 {
		t.Fatal("no TLS peer certificate")
	}
	return cs.PeerCertificates[0].PublicKey
}
