package cose

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"testing"

	gocose "github.com/veraison/go-cose"
	"golang.org/x/mod/sumdb/tlog"
)

// benchHashes is an in-memory tlog.HashReader.
type benchHashes []tlog.Hash

func (h benchHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = h[x]
	}
	return out, nil
}

// benchReceipt returns a genuine receipt for leaf index of a tree of n
// leaves, the leaf's entry and the key that verifies it.
func benchReceipt(b *testing.B, n, index int) (receipt, entry []byte, keys KeySet) {
	b.Helper()
	var stored benchHashes
	var entries [][]byte
	for i := range n {
		e := sha256.Sum256(fmt.Appendf(nil, "bench %d", i))
		entries = append(entries, e[:])
		hs, err := tlog.StoredHashes(int64(i), e[:], stored)
		if err != nil {
			b.Fatal(err)
		}
		stored = append(stored, hs...)
	}
	root, err := tlog.TreeHash(int64(n), stored)
	if err != nil {
		b.Fatal(err)
	}
	p, err := tlog.ProveRecord(int64(n), int64(index), stored)
	if err != nil {
		b.Fatal(err)
	}
	path := make([][]byte, len(p))
	for i := range p {
		path[i] = p[i][:]
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	key, err := NewKey(&k.PublicKey)
	if err != nil {
		b.Fatal(err)
	}
	claims := benchClaims(uint64(n))
	protected, sig, err := SignTreeHead(rand.Reader, k, gocose.AlgorithmES256, key.Kid, claims, root[:])
	if err != nil {
		b.Fatal(err)
	}
	r, err := NewInclusionReceipt(protected, sig, uint64(n), uint64(index), path)
	if err != nil {
		b.Fatal(err)
	}
	return r, entries[index], KeySet{key}
}

func BenchmarkVerifyInclusion(b *testing.B) {
	r, entry, keys := benchReceipt(b, 5000, 1234)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyInclusion(r, entry, keys); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseReceipt(b *testing.B) {
	r, _, _ := benchReceipt(b, 5000, 1234)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseReceipt(r); err != nil {
			b.Fatal(err)
		}
	}
}

func benchClaims(size uint64) ReceiptClaims {
	return ReceiptClaims{Issuer: "charter:dev", Subject: "charter.checkpoint", IssuedAt: 1700000000, TreeSize: size}
}
