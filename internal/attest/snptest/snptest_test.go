package snptest_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/attest/snptest"
	"github.com/google/go-sev-guest/abi"
)

// The evidence verifies against the KDS chain it publishes, and not
// against another signer's.
func TestEvidenceVerifiesWithKDSChain(t *testing.T) {
	s, err := snptest.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	m := bytes.Repeat([]byte{7}, attest.MeasurementSize)
	ev, err := snptest.Evidence(context.Background(), s, &k.PublicKey, snptest.Report{Policy: abi.SnpPolicy{SMT: true}, Measurement: m})
	if err != nil {
		t.Fatal(err)
	}
	roots, err := attest.RootsFromKDSChain(snptest.ProductLine, snptest.KDSChain(s))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.Verify(context.Background(), ev, &k.PublicKey, attest.Policy{Measurements: [][]byte{m}, Roots: roots}); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	other, err := snptest.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	roots2, err := attest.RootsFromKDSChain(snptest.ProductLine, snptest.KDSChain(other))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.Verify(context.Background(), ev, &k.PublicKey, attest.Policy{Measurements: [][]byte{m}, Roots: roots2}); !errors.Is(err, attest.ErrSignature) {
		t.Fatalf("Verify with another chain: %v, want ErrSignature", err)
	}
	if _, err := attest.RootsFromKDSChain(snptest.ProductLine, []byte("not pem")); !errors.Is(err, attest.ErrConfig) {
		t.Fatalf("RootsFromKDSChain(garbage): %v", err)
	}
}
