package cose

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"testing"

	gocose "github.com/veraison/go-cose"
)

func BenchmarkNewInclusionReceipt(b *testing.B) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var root [32]byte
	protected, sig, err := SignTreeHead(rand.Reader, k, gocose.AlgorithmES256, []byte("kid-1"), ReceiptClaims{Issuer: "charter:dev", IssuedAt: 1700000000, TreeSize: 1 << 20}, root[:])
	if err != nil {
		b.Fatal(err)
	}
	path := make([][]byte, 20)
	for i := range path {
		path[i] = make([]byte, 32)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewInclusionReceipt(protected, sig, 1<<20, 12345, path); err != nil {
			b.Fatal(err)
		}
	}
}

// A protected header is accepted from the memo only byte for byte: one
// that is not for vds 1 is refused however many valid ones came before.
func TestReceiptAssemblyChecksHeaderEveryTime(t *testing.T) {
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	var root [32]byte
	protected, sig, err := SignTreeHead(rand.Reader, k, gocose.AlgorithmES256, []byte("kid-1"), ReceiptClaims{Issuer: "charter:dev"}, root[:])
	if err != nil {
		t.Fatal(err)
	}
	path := [][]byte{make([]byte, 32)}
	for range 3 {
		if _, err := NewInclusionReceipt(protected, sig, 2, 1, path); err != nil {
			t.Fatal(err)
		}
	}
	vds2, err := Marshal(map[int64]any{labelAlg: int64(gocose.AlgorithmES256), labelKid: []byte("kid-1"), labelVDS: int64(2)})
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string][]byte{
		"vds 2":     vds2,
		"truncated": protected[:len(protected)-1],
		"not CBOR":  bytes.Repeat([]byte{0xff}, len(protected)),
	} {
		if _, err := NewInclusionReceipt(h, sig, 2, 1, path); err == nil {
			t.Errorf("%s: a receipt was assembled", name)
		}
	}
	if _, err := NewInclusionReceipt(protected, sig, 2, 1, path); err != nil {
		t.Fatal(err)
	}
}
