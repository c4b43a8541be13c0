package cose_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/charterlog/charter/cose"
	gocose "github.com/veraison/go-cose"
)

// rtTree is a reference RFC 9162 tree built with golang.org/x/mod/sumdb/tlog
// (an implementation independent of the transparency-dev/merkle verifier
// that cose uses), over leaf entries that are SHA-256 digests.
type rtTree struct {
	entries [][]byte
	stored  []tlog.Hash
}

func (t *rtTree) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = t.stored[x]
	}
	return out, nil
}

func newRTTree(tb testing.TB, n int) *rtTree {
	tb.Helper()
	t := &rtTree{}
	for i := range n {
		e := sha256.Sum256(fmt.Appendf(nil, "statement %d", i))
		t.entries = append(t.entries, e[:])
		hs, err := tlog.StoredHashes(int64(i), e[:], t)
		if err != nil {
			tb.Fatal(err)
		}
		t.stored = append(t.stored, hs...)
	}
	return t
}

func (t *rtTree) root(tb testing.TB, size int) []byte {
	h, err := tlog.TreeHash(int64(size), t)
	if err != nil {
		tb.Fatal(err)
	}
	return h[:]
}

func hashesToBytes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		out[i] = bytes.Clone(hs[i][:])
	}
	return out
}

func (t *rtTree) inclusion(tb testing.TB, size, index int) [][]byte {
	p, err := tlog.ProveRecord(int64(size), int64(index), t)
	if err != nil {
		tb.Fatal(err)
	}
	return hashesToBytes(p)
}

func (t *rtTree) consistency(tb testing.TB, size1, size2 int) [][]byte {
	p, err := tlog.ProveTree(int64(size2), int64(size1), t)
	if err != nil {
		tb.Fatal(err)
	}
	return hashesToBytes(p)
}

// rtService is a receipt-signing service key.
type rtService struct {
	priv *ecdsa.PrivateKey
	key  cose.Key
}

func newRTService(tb testing.TB) rtService {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	k, err := cose.NewKey(&priv.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	return rtService{priv: priv, key: k}
}

var rtClaims = cose.ReceiptClaims{Issuer: "charter.example", Subject: "charter.checkpoint.v1", IssuedAt: 1766437888}

func (s rtService) sign(tb testing.TB, root []byte) (protected, sig []byte) {
	tb.Helper()
	p, sg, err := cose.SignTreeHead(rand.Reader, s.priv, gocose.AlgorithmES256, s.key.Kid, rtClaims, root)
	if err != nil {
		tb.Fatal(err)
	}
	return p, sg
}

func TestReceiptRoundTrip(t *testing.T) {
	svc := newRTService(t)
	keys := cose.KeySet{svc.key}
	const maxN = 100
	tree := newRTTree(t, maxN)
	for n := 1; n <= maxN; n++ {
		if testing.Short() && n > 20 && n%17 != 0 {
			continue
		}
		root := tree.root(t, n)
		protected, sig := svc.sign(t, root)
		for i := range n {
			r, err := cose.NewInclusionReceipt(protected, sig, uint64(n), uint64(i), tree.inclusion(t, n, i))
			if err != nil {
				t.Fatal(err)
			}
			vr, err := cose.VerifyInclusion(r, tree.entries[i], keys)
			if err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			if !bytes.Equal(vr.Root, root) || vr.TreeSize != uint64(n) || vr.LeafIndex != uint64(i) ||
				!bytes.Equal(vr.Kid, svc.key.Kid) || vr.Claims != rtClaims || vr.VDS != cose.VDSRFC9162 {
				t.Fatalf("n=%d i=%d: verified %+v", n, i, vr)
			}
			// The same receipt never proves another entry.
			other := tree.entries[(i+1)%len(tree.entries)]
			if _, err := cose.VerifyInclusion(r, other, keys); !errors.Is(err, cose.ErrReceiptSignature) {
				t.Fatalf("n=%d i=%d: other leaf: %v", n, i, err)
			}
		}
		for m := 1; m <= n; m++ {
			r, err := cose.NewConsistencyReceipt(protected, sig, uint64(m), uint64(n), tree.consistency(t, m, n))
			if err != nil {
				t.Fatal(err)
			}
			vr, err := cose.VerifyConsistency(r, uint64(m), tree.root(t, m), keys)
			if err != nil {
				t.Fatalf("consistency %d->%d: %v", m, n, err)
			}
			if !bytes.Equal(vr.Root, root) || vr.TreeSize != uint64(n) {
				t.Fatalf("consistency %d->%d: verified %+v", m, n, vr)
			}
			if m < n {
				// The root of another size is not proven.
				if _, err := cose.VerifyConsistency(r, uint64(m), tree.root(t, m+1), keys); err == nil {
					t.Fatalf("consistency %d->%d accepted a wrong old root", m, n)
				}
			}
		}
	}
}

// TestReceiptMangle follows golang.org/x/mod/sumdb/tlog TestTree and
// sumdb/note TestNewVerifier: every bit flip of every proof hash, every
// one-byte change and every truncation of a receipt is rejected, without a
// panic. Under a head that binds its tree size (charterd's) there is no
// exception; under one that does not, a changed tree size with the same
// proof shape verifies and is reported unbound.
func TestReceiptMangle(t *testing.T) {
	t.Run("bound", func(t *testing.T) { testReceiptMangle(t, true) })
	t.Run("unbound", func(t *testing.T) { testReceiptMangle(t, false) })
}

func testReceiptMangle(t *testing.T, bind bool) {
	svc := newRTService(t)
	keys := cose.KeySet{svc.key}
	tree := newRTTree(t, 13)
	signHead := func(root []byte, n int) ([]byte, []byte) {
		if bind {
			return svc.signBound(t, root, uint64(n))
		}
		return svc.sign(t, root)
	}
	for _, n := range []int{1, 2, 5, 8, 13} {
		root := tree.root(t, n)
		protected, sig := signHead(root, n)
		for i := range n {
			path := tree.inclusion(t, n, i)
			for j := range path {
				for bit := range 8 * len(path[j]) {
					bad := cloneHashes(path)
					bad[j][bit/8] ^= 1 << (bit % 8)
					r, err := cose.NewInclusionReceipt(protected, sig, uint64(n), uint64(i), bad)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := cose.VerifyInclusion(r, tree.entries[i], keys); err == nil {
						t.Fatalf("n=%d i=%d: flipped bit %d of path[%d] accepted", n, i, bit, j)
					}
				}
			}
			// Wrong index, wrong size, extra or missing hashes.
			for _, c := range []struct {
				size, index uint64
				path        [][]byte
			}{
				{uint64(n), uint64((i + 1) % n), path},
				{uint64(n + 1), uint64(i), path},
				{uint64(n), uint64(i), append(cloneHashes(path), root)},
			} {
				if c.size == uint64(n) && c.index == uint64(i) && len(c.path) == len(path) {
					continue
				}
				r, err := cose.NewInclusionReceipt(protected, sig, uint64(n), uint64(i), c.path)
				if err != nil {
					continue
				}
				// The numbers are rewritten in the bytes: a bound head
				// would not assemble them.
				r = rewriteProof(t, r, c.size, c.index)
				vr, err := cose.VerifyInclusion(r, tree.entries[i], keys)
				if !bind && err == nil && c.size != uint64(n) && c.index == uint64(i) && len(c.path) == len(path) && bytes.Equal(vr.Root, root) && !vr.SizeBound {
					// RFC 9942 signs only the root and the protected
					// header: without a signed tree size, a size whose
					// proof shape is the same (e.g. index 0 in sizes 5
					// and 6) leads to the same signed root, so the leaf is
					// still proven to be in the signed tree; only the
					// reported size is the sender's claim, and SizeBound
					// says so.
					continue
				}
				if err == nil {
					t.Fatalf("n=%d i=%d: altered proof (size %d index %d len %d) accepted", n, i, c.size, c.index, len(c.path))
				}
			}
			if len(path) > 0 {
				r, _ := cose.NewInclusionReceipt(protected, sig, uint64(n), uint64(i), path[:len(path)-1])
				if _, err := cose.VerifyInclusion(r, tree.entries[i], keys); !errors.Is(err, cose.ErrProof) {
					t.Fatalf("n=%d i=%d: short path: %v", n, i, err)
				}
			}
		}
		for m := 1; m < n; m++ {
			path := tree.consistency(t, m, n)
			for j := range path {
				for bit := range 8 * len(path[j]) {
					bad := cloneHashes(path)
					bad[j][bit/8] ^= 1 << (bit % 8)
					r, _ := cose.NewConsistencyReceipt(protected, sig, uint64(m), uint64(n), bad)
					if _, err := cose.VerifyConsistency(r, uint64(m), tree.root(t, m), keys); err == nil {
						t.Fatalf("consistency %d->%d: flipped bit %d of path[%d] accepted", m, n, bit, j)
					}
				}
			}
		}
	}

	// Every byte change and truncation of whole receipts.
	n, i := 13, 6
	root := tree.root(t, n)
	protected, sig := signHead(root, n)
	incl, _ := cose.NewInclusionReceipt(protected, sig, uint64(n), uint64(i), tree.inclusion(t, n, i))
	cons, _ := cose.NewConsistencyReceipt(protected, sig, 5, uint64(n), tree.consistency(t, 5, n))
	verifyIncl := func(b []byte) error { _, err := cose.VerifyInclusion(b, tree.entries[i], keys); return err }
	verifyCons := func(b []byte) error { _, err := cose.VerifyConsistency(b, 5, tree.root(t, 5), keys); return err }
	for name, c := range map[string]struct {
		b      []byte
		verify func([]byte) error
	}{"inclusion": {incl, verifyIncl}, "consistency": {cons, verifyCons}} {
		if err := c.verify(c.b); err != nil {
			t.Fatalf("%s: unmangled: %v", name, err)
		}
		for k := range c.b {
			for _, delta := range []byte{1, 0x80, 0xff} {
				b := bytes.Clone(c.b)
				b[k] += delta
				if err := c.verify(b); err == nil && (bind || !onlyTreeSizeChanged(t, c.b, b)) {
					t.Fatalf("%s: byte %d + %#x accepted", name, k, delta)
				}
			}
		}
		for k := 0; k < len(c.b); k++ {
			if err := c.verify(c.b[:k]); err == nil {
				t.Fatalf("%s: truncation to %d bytes accepted", name, k)
			}
		}
		if err := c.verify(append(bytes.Clone(c.b), 0)); err == nil {
			t.Fatalf("%s: trailing byte accepted", name)
		}
	}
}

func cloneHashes(p [][]byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = bytes.Clone(p[i])
	}
	return out
}

func TestReceiptParse(t *testing.T) {
	svc := newRTService(t)
	tree := newRTTree(t, 5)
	root := tree.root(t, 5)
	protected, sig := svc.sign(t, root)
	r, err := cose.NewInclusionReceipt(protected, sig, 5, 3, tree.inclusion(t, 5, 3))
	if err != nil {
		t.Fatal(err)
	}
	p, err := cose.ParseReceipt(r)
	if err != nil {
		t.Fatal(err)
	}
	bp, bs := svc.signBound(t, root, 5)
	br, err := cose.NewInclusionReceipt(bp, bs, 5, 3, tree.inclusion(t, 5, 3))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := cose.ParseReceipt(br); err != nil || b.Claims.TreeSize != 5 || b.Claims.Issuer != rtClaims.Issuer {
		t.Fatalf("bound head: parsed claims %+v, %v", b.Claims, err)
	}
	if p.Alg != gocose.AlgorithmES256 || !bytes.Equal(p.Kid, svc.key.Kid) || p.VDS != 1 || p.Claims != rtClaims ||
		len(p.Inclusion) != 1 || p.Inclusion[0].TreeSize != 5 || p.Inclusion[0].LeafIndex != 3 ||
		!bytes.Equal(p.RawProtected, protected) || !bytes.Equal(p.Signature, sig) || !bytes.Equal(p.Raw, r) {
		t.Fatalf("parsed %+v", p)
	}

	// Hand-built malformed receipts, each rejected with the named error.
	hdr := func(m map[any]any) []byte { b, _ := cose.Marshal(m); return b }
	proof := func(v any) []byte { b, _ := cose.Marshal(v); return b }
	okProof := proof([]any{5, 3, tree.inclusion(t, 5, 3)})
	goodHdr := map[any]any{1: -7, 4: svc.key.Kid, 395: 1}
	build := func(ph []byte, uh any, payload any, sig any) []byte {
		b, err := cose.Marshal(cborTag18([]any{ph, uh, payload, sig}))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	vdp := func(label int, proofs ...[]byte) map[any]any {
		return map[any]any{396: map[any]any{label: proofs}}
	}
	untagged, _ := cose.Marshal([]any{hdr(goodHdr), vdp(-1, okProof), nil, sig})
	// goodHdr with alg (1) again: map(4) of which two pairs have label 1.
	dupHdr := append([]byte{0xa4}, hdr(goodHdr)[1:]...)
	dupHdr = append(dupHdr, 0x01, 0x26)
	for _, c := range []struct {
		name string
		b    []byte
		want error
	}{
		{"valid", build(hdr(goodHdr), vdp(-1, okProof), nil, sig), nil},
		{"untagged", untagged, cose.ErrBadReceipt},
		{"attached payload", build(hdr(goodHdr), vdp(-1, okProof), root, sig), cose.ErrBadReceipt},
		{"empty signature", build(hdr(goodHdr), vdp(-1, okProof), nil, []byte{}), cose.ErrBadReceipt},
		{"no alg", build(hdr(map[any]any{395: 1}), vdp(-1, okProof), nil, sig), cose.ErrBadReceipt},
		{"duplicate label in protected", build(dupHdr, vdp(-1, okProof), nil, sig), cose.ErrBadReceipt},
		{"no vds", build(hdr(map[any]any{1: -7}), vdp(-1, okProof), nil, sig), cose.ErrBadReceipt},
		{"vds 3", build(hdr(map[any]any{1: -7, 395: 3}), vdp(-1, okProof), nil, sig), cose.ErrUnsupportedVDS},
		{"vds unprotected", build(hdr(map[any]any{1: -7}), map[any]any{395: 1, 396: map[any]any{-1: [][]byte{okProof}}}, nil, sig), cose.ErrBadReceipt},
		{"text kid", build(hdr(map[any]any{1: -7, 395: 1, 4: "k"}), vdp(-1, okProof), nil, sig), cose.ErrBadReceipt},
		{"no vdp", build(hdr(goodHdr), map[any]any{}, nil, sig), cose.ErrBadReceipt},
		{"unknown proof type", build(hdr(goodHdr), vdp(-3, okProof), nil, sig), cose.ErrBadReceipt},
		{"no proofs", build(hdr(goodHdr), vdp(-1), nil, sig), cose.ErrBadReceipt},
		{"both proof types", build(hdr(goodHdr), map[any]any{396: map[any]any{-1: [][]byte{okProof}, -2: [][]byte{proof([]any{3, 5, [][]byte{}})}}}, nil, sig), cose.ErrBadReceipt},
		{"index = size", build(hdr(goodHdr), vdp(-1, proof([]any{5, 5, [][]byte{}})), nil, sig), cose.ErrBadReceipt},
		{"short hash", build(hdr(goodHdr), vdp(-1, proof([]any{5, 3, [][]byte{make([]byte, 31)}})), nil, sig), cose.ErrBadReceipt},
		{"null path", build(hdr(goodHdr), vdp(-1, proof([]any{5, 3, nil})), nil, sig), cose.ErrBadReceipt},
		{"negative size", build(hdr(goodHdr), vdp(-1, proof([]any{-5, 3, [][]byte{}})), nil, sig), cose.ErrBadReceipt},
		{"path of 65", build(hdr(goodHdr), vdp(-1, proof([]any{5, 3, make65()})), nil, sig), cose.ErrBadReceipt},
		{"proof of 4 items", build(hdr(goodHdr), vdp(-1, proof([]any{5, 3, [][]byte{}, 1})), nil, sig), cose.ErrBadReceipt},
		{"consistency 0", build(hdr(goodHdr), vdp(-2, proof([]any{0, 5, [][]byte{}})), nil, sig), cose.ErrBadReceipt},
		{"consistency backwards", build(hdr(goodHdr), vdp(-2, proof([]any{5, 3, [][]byte{}})), nil, sig), cose.ErrBadReceipt},
		{"unknown crit", build(hdr(map[any]any{1: -7, 395: 1, 2: []any{99}}), vdp(-1, okProof), nil, sig), cose.ErrBadReceipt},
		{"signed tree size", build(hdr(map[any]any{1: -7, 395: 1, 15: map[any]any{-69162: 5}}), vdp(-1, okProof), nil, sig), nil},
		{"signed tree size 0", build(hdr(map[any]any{1: -7, 395: 1, 15: map[any]any{-69162: 0}}), vdp(-1, okProof), nil, sig), cose.ErrBadReceipt},
		{"negative signed tree size", build(hdr(map[any]any{1: -7, 395: 1, 15: map[any]any{-69162: -5}}), vdp(-1, okProof), nil, sig), cose.ErrBadReceipt},
		{"text signed tree size", build(hdr(map[any]any{1: -7, 395: 1, 15: map[any]any{-69162: "5"}}), vdp(-1, okProof), nil, sig), cose.ErrBadReceipt},
		{"signed tree size in vds 2", build(hdr(map[any]any{1: -7, 395: 2, 15: map[any]any{-69162: 5}}), vdp(-1, okProof), nil, sig), cose.ErrBadReceipt},
	} {
		_, err := cose.ParseReceipt(c.b)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
		}
	}
}

func make65() [][]byte {
	p := make([][]byte, 65)
	for i := range p {
		p[i] = make([]byte, 32)
	}
	return p
}

func TestVerifyKeySelection(t *testing.T) {
	svc := newRTService(t)
	other := newRTService(t)
	tree := newRTTree(t, 4)
	root := tree.root(t, 4)
	protected, sig := svc.sign(t, root)
	r, _ := cose.NewInclusionReceipt(protected, sig, 4, 1, tree.inclusion(t, 4, 1))

	if _, err := cose.VerifyInclusion(r, tree.entries[1], cose.KeySet{other.key}); !errors.Is(err, cose.ErrUnknownKey) {
		t.Errorf("unknown kid: %v", err)
	}
	if _, err := cose.VerifyInclusion(r, tree.entries[1], cose.KeySet{other.key, svc.key}); err != nil {
		t.Errorf("kid found among two: %v", err)
	}
	// The right kid with the wrong public key fails the signature.
	impostor := other.key
	impostor.Kid = svc.key.Kid
	if _, err := cose.VerifyInclusion(r, tree.entries[1], cose.KeySet{impostor}); !errors.Is(err, cose.ErrReceiptSignature) {
		t.Errorf("wrong key under the kid: %v", err)
	}
	// An Ed25519 key under the kid: alg mismatch.
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	edKey, _ := cose.NewKey(edPub)
	edKey.Kid = svc.key.Kid
	if _, err := cose.VerifyInclusion(r, tree.entries[1], cose.KeySet{edKey}); !errors.Is(err, cose.ErrReceiptSignature) {
		t.Errorf("Ed25519 key for an ES256 receipt: %v", err)
	}
	// A hand-built Key without Alg: its curve decides. A P-384 key never
	// verifies an ES256 receipt; the right P-256 key does.
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := cose.VerifyInclusion(r, tree.entries[1], cose.KeySet{{Kid: svc.key.Kid, Public: &p384.PublicKey}}); !errors.Is(err, cose.ErrReceiptSignature) {
		t.Errorf("P-384 key without alg for an ES256 receipt: %v", err)
	}
	if _, err := cose.VerifyInclusion(r, tree.entries[1], cose.KeySet{{Kid: svc.key.Kid, Public: &svc.priv.PublicKey}}); err != nil {
		t.Errorf("P-256 key without alg: %v", err)
	}
	if _, err := cose.VerifyInclusion(r, tree.entries[1], nil); !errors.Is(err, cose.ErrUnknownKey) {
		t.Errorf("no keys: %v", err)
	}
	if _, err := cose.VerifyInclusion(r, tree.entries[1][:31], cose.KeySet{svc.key}); !errors.Is(err, cose.ErrProof) {
		t.Errorf("short leaf entry: %v", err)
	}
	c, _ := cose.NewConsistencyReceipt(protected, sig, 2, 4, tree.consistency(t, 2, 4))
	if _, err := cose.VerifyInclusion(c, tree.entries[1], cose.KeySet{svc.key}); !errors.Is(err, cose.ErrWrongProofType) {
		t.Errorf("consistency receipt as inclusion: %v", err)
	}
	if _, err := cose.VerifyConsistency(r, 2, tree.root(t, 2), cose.KeySet{svc.key}); !errors.Is(err, cose.ErrWrongProofType) {
		t.Errorf("inclusion receipt as consistency: %v", err)
	}
	if _, err := cose.VerifyConsistency(c, 3, tree.root(t, 3), cose.KeySet{svc.key}); !errors.Is(err, cose.ErrProof) {
		t.Errorf("consistency from another size: %v", err)
	}

	// SignTreeHead refuses bad inputs.
	if _, _, err := cose.SignTreeHead(rand.Reader, svc.priv, gocose.AlgorithmES256, svc.key.Kid, rtClaims, root[:31]); err == nil {
		t.Error("SignTreeHead accepted a 31-byte root")
	}
	if _, _, err := cose.SignTreeHead(rand.Reader, svc.priv, gocose.AlgorithmES256, nil, rtClaims, root); err == nil {
		t.Error("SignTreeHead accepted an empty kid")
	}
	if _, err := cose.NewInclusionReceipt(protected, sig, 4, 4, nil); err == nil {
		t.Error("NewInclusionReceipt accepted index = size")
	}
	if _, err := cose.NewConsistencyReceipt(protected, sig, 5, 4, nil); err == nil {
		t.Error("NewConsistencyReceipt accepted size1 > size2")
	}
}

// TestVerifyEd25519 signs tree heads with an Ed25519 key.
func TestVerifyEd25519(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, err := cose.NewKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	tree := newRTTree(t, 7)
	root := tree.root(t, 7)
	protected, sig, err := cose.SignTreeHead(rand.Reader, priv, gocose.AlgorithmEdDSA, key.Kid, cose.ReceiptClaims{Issuer: "x"}, root)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := cose.NewInclusionReceipt(protected, sig, 7, 6, tree.inclusion(t, 7, 6))
	vr, err := cose.VerifyInclusion(r, tree.entries[6], cose.KeySet{key})
	if err != nil {
		t.Fatal(err)
	}
	if vr.Claims.Issuer != "x" || vr.Claims.Subject != "" || vr.Claims.IssuedAt != 0 {
		t.Fatalf("claims %+v", vr.Claims)
	}
}

func cborTag18(v any) cbor.Tag { return cbor.Tag{Number: 18, Content: v} }

// onlyTreeSizeChanged reports whether mangled differs from orig only in the
// proof's tree_size (inclusion) or tree_size_2 (consistency). RFC 9942
// signs the root and the protected header, so without a signed tree size
// (CWT claim -69162) the size is the sender's claim: a size with the same proof shape for the index (13 and
// 14 for index 6) leads to the same signed root and verifies. Nothing else
// in a receipt may change undetected.
func onlyTreeSizeChanged(t *testing.T, orig, mangled []byte) bool {
	t.Helper()
	a, err1 := cose.ParseReceipt(orig)
	b, err2 := cose.ParseReceipt(mangled)
	if err1 != nil || err2 != nil {
		return false
	}
	var sizeA, sizeB, fixedA, fixedB uint64
	var pathA, pathB [][]byte
	switch {
	case len(a.Inclusion) == 1 && len(b.Inclusion) == 1:
		sizeA, fixedA, pathA = a.Inclusion[0].TreeSize, a.Inclusion[0].LeafIndex, a.Inclusion[0].Path
		sizeB, fixedB, pathB = b.Inclusion[0].TreeSize, b.Inclusion[0].LeafIndex, b.Inclusion[0].Path
	case len(a.Consistency) == 1 && len(b.Consistency) == 1:
		sizeA, fixedA, pathA = a.Consistency[0].Size2, a.Consistency[0].Size1, a.Consistency[0].Path
		sizeB, fixedB, pathB = b.Consistency[0].Size2, b.Consistency[0].Size1, b.Consistency[0].Path
	default:
		return false
	}
	if sizeA == sizeB || fixedA != fixedB || len(pathA) != len(pathB) {
		return false
	}
	for i := range pathA {
		if !bytes.Equal(pathA[i], pathB[i]) {
			return false
		}
	}
	t.Logf("accepted: tree size %d claimed as %d (not covered by the signature)", sizeA, sizeB)
	return bytes.Equal(a.RawProtected, b.RawProtected) && bytes.Equal(a.Signature, b.Signature)
}
