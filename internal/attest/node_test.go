package attest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha512"
	"os"
	"testing"
)

// TestNodeEvidence: on virtual the evidence binds the node key and
// declares the running binary's SHA-384; an unknown platform is refused.
func TestNodeEvidence(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ev, err := NodeEvidence(context.Background(), "virtual", key)
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	want := sha512.Sum384(b)
	m, err := ev.Measurement()
	if err != nil || !bytes.Equal(m, want[:]) {
		t.Fatalf("measurement %x, %v; want the binary's %x", m, err, want)
	}
	if _, err := Verify(context.Background(), ev, &key.PublicKey, Policy{AllowVirtual: true, Measurements: [][]byte{m}}); err != nil {
		t.Fatalf("the evidence does not verify for its key: %v", err)
	}
	if _, err := NodeEvidence(context.Background(), "tdx", key); err == nil {
		t.Fatal("an unknown platform was accepted")
	}
}
