package cose

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	gocose "github.com/veraison/go-cose"
)

// fuzzSeed is one receipt that verifies, with its leaf entry and keys.
type fuzzSeed struct {
	receipt, entry []byte
	keys           KeySet
	// bound: the head signs tree size 3, and the proof is for leaf 2.
	bound bool
}

// fuzzSeeds returns the interop receipts that verify and a generated one.
func fuzzSeeds(f *testing.F) []fuzzSeed {
	f.Helper()
	var seeds []fuzzSeed
	for _, id := range []string{"valid-es256", "valid-eddsa", "valid-ccf-vds2"} {
		var exp struct {
			LeafEntry string `json:"leaf_entry"`
		}
		if err := json.Unmarshal(readInterop(f, "scitt-cose-v1", "v1", id, "expected.json"), &exp); err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, fuzzSeed{
			receipt: readInterop(f, "scitt-cose-v1", "v1", id, "receipt.cose"),
			entry:   mustHex(f, exp.LeafEntry),
			keys:    pemKeySet(f, readInterop(f, "scitt-cose-v1", "v1", id, "log-key.pub")),
		})
	}
	ts := readInterop(f, "scitt-ccf-ledger", "test", "transparent_statements", "uvm_0.2.10.cose")
	st, rs, err := SplitTransparentStatement(ts)
	if err != nil {
		f.Fatal(err)
	}
	e := sha256.Sum256(st)
	seeds = append(seeds, fuzzSeed{rs[0], e[:], ccfTrustStore(f, readInterop(f, "scitt-ccf-ledger", "test", "transparent_statements", "esrp-cts-db.json")), false})

	// A generated receipt: leaf 2 of a 3-leaf tree. The key is fresh each
	// run, so saved corpus entries of this seed only exercise rejection.
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	k, _ := NewKey(&priv.PublicKey)
	h := rfc6962.DefaultHasher
	var entries, leaves [][]byte
	for i := range 3 {
		s := sha256.Sum256(fmt.Appendf(nil, "entry %d", i))
		entries = append(entries, s[:])
		leaves = append(leaves, h.HashLeaf(s[:]))
	}
	root := h.HashChildren(h.HashChildren(leaves[0], leaves[1]), leaves[2])
	// Once without and once with the signed tree size.
	for _, claims := range []ReceiptClaims{{Issuer: "fuzz"}, {Issuer: "fuzz", TreeSize: 3}} {
		protected, sig, err := SignTreeHead(rand.Reader, priv, gocose.AlgorithmES256, k.Kid, claims, root)
		if err != nil {
			f.Fatal(err)
		}
		r, err := NewInclusionReceipt(protected, sig, 3, 2, [][]byte{h.HashChildren(leaves[0], leaves[1])})
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, fuzzSeed{r, entries[2], KeySet{k}, claims.TreeSize != 0})
	}

	for _, s := range seeds {
		if _, err := VerifyInclusion(s.receipt, s.entry, s.keys); err != nil {
			f.Fatalf("seed does not verify: %v", err)
		}
	}
	return seeds
}

// FuzzParseReceipt: ParseReceipt never panics, and what it accepts is a
// tagged COSE_Sign1 with a known vds and exactly one kind of proof, every
// hash 32 bytes.
func FuzzParseReceipt(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s.receipt)
	}
	for _, name := range []string{"inclusion-receipt.cbor", "consistency-receipt.cbor"} {
		f.Add(readInterop(f, "cose-receipts-draft", "examples", name))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseReceipt(b)
		if err != nil {
			return
		}
		if b[0] != 0xd2 || (r.VDS != VDSRFC9162 && r.VDS != VDSCCF) || len(r.Signature) == 0 {
			t.Fatalf("accepted %x: %+v", b, r)
		}
		kinds := 0
		for _, n := range []int{len(r.Inclusion), len(r.Consistency), len(r.CCF)} {
			if n > 0 {
				kinds++
			}
		}
		if kinds != 1 {
			t.Fatalf("accepted a receipt with %d proof kinds", kinds)
		}
		for _, p := range r.Inclusion {
			if p.LeafIndex >= p.TreeSize || len(p.Path) > maxPathLen {
				t.Fatalf("accepted inclusion proof %+v", p)
			}
			for _, h := range p.Path {
				if len(h) != hashSize {
					t.Fatalf("accepted a %d-byte hash", len(h))
				}
			}
		}
		for _, p := range r.Consistency {
			if p.Size1 == 0 || p.Size1 > p.Size2 {
				t.Fatalf("accepted consistency proof %+v", p)
			}
		}
		for _, p := range r.CCF {
			if len(p.ClaimsDigest) != hashSize || len(p.WriteSetDigest) != hashSize {
				t.Fatalf("accepted CCF proof %v", p)
			}
		}
	})
}

// FuzzVerifyInclusion: VerifyInclusion never panics, a mutated receipt
// never verifies for an entry other than the one its seed proves, and one
// whose seed binds its tree size never verifies for another position.
func FuzzVerifyInclusion(f *testing.F) {
	seeds := fuzzSeeds(f)
	for i, s := range seeds {
		f.Add(uint8(i), s.receipt, false)
		f.Add(uint8(i), s.receipt, true)
	}
	f.Fuzz(func(t *testing.T, seed uint8, b []byte, otherLeaf bool) {
		s := seeds[int(seed)%len(seeds)]
		entry := s.entry
		if otherLeaf {
			entry = bytes.Clone(entry)
			entry[len(entry)-1] ^= 0x01
		}
		vr, err := VerifyInclusion(b, entry, s.keys)
		if err != nil {
			return
		}
		if otherLeaf {
			// A signature binds the root; a root over two different
			// entries at one position would be a SHA-256 collision.
			t.Fatalf("receipt %x verified for another entry %s", b, hex.EncodeToString(entry))
		}
		if vr.Root == nil || vr.Kid == nil {
			t.Fatalf("verified without root or kid: %+v", vr)
		}
		if s.bound && (!vr.SizeBound || vr.TreeSize != 3 || vr.LeafIndex != 2) {
			t.Fatalf("receipt %x of leaf 2 of a signed tree of 3 verified as %+v", b, vr)
		}
		if vr.SizeBound && vr.TreeSize != vr.Claims.TreeSize {
			t.Fatalf("bound receipt verified with proof size %d, signed %d", vr.TreeSize, vr.Claims.TreeSize)
		}
	})
}
