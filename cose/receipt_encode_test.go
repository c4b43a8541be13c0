package cose

import (
	"bytes"
	mathrand "math/rand/v2"
	"testing"

	"github.com/charterlog/charter/cbor"
)

// proofArray is an inclusion proof [tree_size, leaf_index, path] or a
// consistency proof [tree_size_1, tree_size_2, path] (RFC 9162 vds 1).
type proofArray struct {
	_    struct{} `cbor:",toarray"`
	A, B uint64
	Path [][]byte
}

// detachedSign1 is a COSE_Sign1 with a detached payload (nil).
type detachedSign1 struct {
	_           struct{} `cbor:",toarray"`
	Protected   []byte
	Unprotected map[int64]map[int64][][]byte
	Payload     []byte // nil: encoded as CBOR null
	Signature   []byte
}

// encodeReceipt writes by hand what the reflective encoder writes for
// the structures above; receipts are compared byte for byte by verifiers
// and in test vectors, so the two must never differ.
func TestEncodeReceiptMatchesTheEncoder(t *testing.T) {
	rng := mathrand.New(mathrand.NewPCG(3, 4))
	rnd := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	for range 200 {
		kind := vdpInclusion
		if rng.IntN(2) == 0 {
			kind = vdpConsistency
		}
		var path [][]byte
		if n := rng.IntN(66); n > 0 || rng.IntN(2) == 0 {
			path = make([][]byte, n)
			for i := range path {
				path[i] = rnd(hashSize)
			}
		}
		a, b := rng.Uint64()>>rng.IntN(64), rng.Uint64()>>rng.IntN(64)
		protected, signature := rnd(1+rng.IntN(300)), rnd(1+rng.IntN(600))
		proof, err := cbor.Marshal(proofArray{A: a, B: b, Path: path})
		if err != nil {
			t.Fatal(err)
		}
		want, err := cbor.Marshal(cbor.Tag{Number: 18, Content: detachedSign1{
			Protected:   protected,
			Unprotected: map[int64]map[int64][][]byte{labelVDP: {kind: {proof}}},
			Signature:   signature,
		}})
		if err != nil {
			t.Fatal(err)
		}
		if got := encodeReceipt(protected, signature, kind, a, b, path); !bytes.Equal(got, want) {
			t.Fatalf("encodeReceipt = %x, the encoder gives %x", got, want)
		}
	}
}
