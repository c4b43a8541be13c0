package cose_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/cose/cosetest"
	gocose "github.com/veraison/go-cose"
)

// signBound signs root as the tree head of a tree of size leaves, binding
// the size (CWT claim -69162), as charterd does.
func (s rtService) signBound(tb testing.TB, root []byte, size uint64) (protected, sig []byte) {
	tb.Helper()
	claims := rtClaims
	claims.TreeSize = size
	p, sg, err := cose.SignTreeHead(rand.Reader, s.priv, gocose.AlgorithmES256, s.key.Kid, claims, root)
	if err != nil {
		tb.Fatal(err)
	}
	return p, sg
}

// rewriteProof replaces the two numbers of the receipt's proof by a and b,
// as anyone holding it can (cosetest.RewriteProof).
func rewriteProof(tb testing.TB, receipt []byte, a, b uint64) []byte {
	tb.Helper()
	r, err := cosetest.RewriteProof(receipt, cosetest.SetProof(a, b))
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// sameRootPairs lists every (size, index) other than (n, i), with size up
// to 2n+2, for which the inclusion path of leaf i in the tree of n leaves
// leads to the same root: the rewrites a verifier cannot tell from the
// proof alone.
func sameRootPairs(tb testing.TB, tree *rtTree, n, i int) [][2]uint64 {
	tb.Helper()
	path := tree.inclusion(tb, n, i)
	root := tree.root(tb, n)
	leaf := rfc6962.DefaultHasher.HashLeaf(tree.entries[i])
	var out [][2]uint64
	for size := uint64(1); size <= uint64(2*n+2); size++ {
		for idx := range size {
			if size == uint64(n) && idx == uint64(i) {
				continue
			}
			got, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, idx, size, leaf, path)
			if err == nil && bytes.Equal(got, root) {
				out = append(out, [2]uint64{size, idx})
			}
		}
	}
	return out
}

// TestReceiptBindsTreeSize is the attack of issue 14: a genuine receipt
// rewritten to another (tree_size, leaf_index) with the same proof shape.
// Under a head that binds its size every such rewrite is refused, naming
// both sizes; under a head that does not (other services, Charter before
// the claim) the same rewrite verifies — which is why SizeBound is false
// there.
func TestReceiptBindsTreeSize(t *testing.T) {
	svc := newRTService(t)
	keys := cose.KeySet{svc.key}
	const maxN = 24
	tree := newRTTree(t, 2*maxN+2)
	var rewrites int
	seen43 := false
	for n := 1; n <= maxN; n++ {
		root := tree.root(t, n)
		boundP, boundS := svc.signBound(t, root, uint64(n))
		openP, openS := svc.sign(t, root)
		for i := range n {
			path := tree.inclusion(t, n, i)
			bound, err := cose.NewInclusionReceipt(boundP, boundS, uint64(n), uint64(i), path)
			if err != nil {
				t.Fatal(err)
			}
			open, err := cose.NewInclusionReceipt(openP, openS, uint64(n), uint64(i), path)
			if err != nil {
				t.Fatal(err)
			}
			vr, err := cose.VerifyInclusion(bound, tree.entries[i], keys)
			if err != nil || !vr.SizeBound || vr.TreeSize != uint64(n) || vr.LeafIndex != uint64(i) || vr.Claims.TreeSize != uint64(n) {
				t.Fatalf("n=%d i=%d: genuine bound receipt: %+v, %v", n, i, vr, err)
			}
			vr, err = cose.VerifyInclusion(open, tree.entries[i], keys)
			if err != nil || vr.SizeBound || vr.TreeSize != uint64(n) || vr.LeafIndex != uint64(i) {
				t.Fatalf("n=%d i=%d: genuine unbound receipt: %+v, %v", n, i, vr, err)
			}
			for _, pair := range sameRootPairs(t, tree, n, i) {
				size, idx := pair[0], pair[1]
				rewrites++
				seen43 = seen43 || (n == 4 && i == 0 && size == 3 && idx == 0)
				_, err := cose.VerifyInclusion(rewriteProof(t, bound, size, idx), tree.entries[i], keys)
				if !errors.Is(err, cose.ErrTreeSizeNotSigned) {
					t.Fatalf("n=%d i=%d rewritten to size %d index %d: %v, want ErrTreeSizeNotSigned", n, i, size, idx, err)
				}
				if msg := err.Error(); !strings.Contains(msg, fmt.Sprintf("tree size %d,", size)) || !strings.Contains(msg, fmt.Sprintf("signed tree size %d", n)) {
					t.Fatalf("error %q does not name both sizes (%d, %d)", msg, size, n)
				}
				vr, err := cose.VerifyInclusion(rewriteProof(t, open, size, idx), tree.entries[i], keys)
				if err != nil || vr.SizeBound || vr.TreeSize != size || vr.LeafIndex != idx {
					t.Fatalf("n=%d i=%d rewritten to size %d index %d without binding: %+v, %v (the attack should verify, unbound)", n, i, size, idx, vr, err)
				}
			}
		}
	}
	if rewrites == 0 || !seen43 {
		t.Fatalf("found %d same-shape rewrites (size 4 index 0 -> size 3 index 0 seen: %v); the test checks nothing", rewrites, seen43)
	}
	t.Logf("%d same-shape rewrites refused under a bound head, accepted under an unbound one", rewrites)
}

// TestTreeSizeDeterminesIndex checks the reasoning that makes a signed
// tree size enough: for a fixed size, the inclusion path of leaf i never
// leads to the root from any other index j (distinct leaves). Pure Merkle
// arithmetic over every pair, then the same through VerifyInclusion for
// small trees.
func TestTreeSizeDeterminesIndex(t *testing.T) {
	maxN := 100
	if testing.Short() {
		maxN = 40
	}
	tree := newRTTree(t, maxN)
	h := rfc6962.DefaultHasher
	for n := 1; n <= maxN; n++ {
		root := tree.root(t, n)
		for i := range n {
			path := tree.inclusion(t, n, i)
			leaf := h.HashLeaf(tree.entries[i])
			for j := range uint64(n) {
				got, err := proof.RootFromInclusionProof(h, j, uint64(n), leaf, path)
				if (err == nil && bytes.Equal(got, root)) != (j == uint64(i)) {
					t.Fatalf("size %d: the path of index %d gives the root from index %d: %v", n, i, j, err)
				}
			}
		}
	}

	svc := newRTService(t)
	keys := cose.KeySet{svc.key}
	for n := 1; n <= 12; n++ {
		root := tree.root(t, n)
		p, s := svc.signBound(t, root, uint64(n))
		for i := range n {
			r, err := cose.NewInclusionReceipt(p, s, uint64(n), uint64(i), tree.inclusion(t, n, i))
			if err != nil {
				t.Fatal(err)
			}
			for j := range uint64(n) {
				if j == uint64(i) {
					continue
				}
				if _, err := cose.VerifyInclusion(rewriteProof(t, r, uint64(n), j), tree.entries[i], keys); !errors.Is(err, cose.ErrReceiptSignature) && !errors.Is(err, cose.ErrProof) {
					t.Fatalf("size %d: index %d rewritten to %d: %v", n, i, j, err)
				}
			}
		}
	}
}

// TestConsistencyReceiptBindsNewerSize: the signed size of a consistency
// receipt is tree_size_2, the checkpoint's. A rewritten tree_size_2 is
// refused under a bound head and goes unnoticed under an unbound one.
func TestConsistencyReceiptBindsNewerSize(t *testing.T) {
	svc := newRTService(t)
	keys := cose.KeySet{svc.key}
	const maxN = 16
	tree := newRTTree(t, 2*maxN+2)
	var rewrites int
	for n := 2; n <= maxN; n++ {
		root := tree.root(t, n)
		boundP, boundS := svc.signBound(t, root, uint64(n))
		openP, openS := svc.sign(t, root)
		for m := 1; m < n; m++ {
			path := tree.consistency(t, m, n)
			bound, err := cose.NewConsistencyReceipt(boundP, boundS, uint64(m), uint64(n), path)
			if err != nil {
				t.Fatal(err)
			}
			open, _ := cose.NewConsistencyReceipt(openP, openS, uint64(m), uint64(n), path)
			root1 := tree.root(t, m)
			if vr, err := cose.VerifyConsistency(bound, uint64(m), root1, keys); err != nil || !vr.SizeBound || vr.TreeSize != uint64(n) {
				t.Fatalf("%d->%d bound: %+v, %v", m, n, vr, err)
			}
			if vr, err := cose.VerifyConsistency(open, uint64(m), root1, keys); err != nil || vr.SizeBound {
				t.Fatalf("%d->%d unbound: %+v, %v", m, n, vr, err)
			}
			for size2 := uint64(m); size2 <= uint64(2*n+2); size2++ {
				if size2 == uint64(n) {
					continue
				}
				_, err := cose.VerifyConsistency(rewriteProof(t, bound, uint64(m), size2), uint64(m), root1, keys)
				if !errors.Is(err, cose.ErrTreeSizeNotSigned) {
					t.Fatalf("%d->%d rewritten to %d->%d: %v", m, n, m, size2, err)
				}
				if vr, err := cose.VerifyConsistency(rewriteProof(t, open, uint64(m), size2), uint64(m), root1, keys); err == nil {
					rewrites++
					if vr.SizeBound || vr.TreeSize != size2 {
						t.Fatalf("%d->%d rewritten to size %d unbound: %+v", m, n, size2, vr)
					}
				}
			}
		}
	}
	if rewrites == 0 {
		t.Fatal("no rewrite of tree_size_2 verified under an unbound head; the bound case checks nothing")
	}
	t.Logf("%d same-shape tree_size_2 rewrites verify unbound, all refused bound", rewrites)
}

// TestAssemblyRefusesOtherSizes: a head that binds size n assembles
// receipts for size n only.
func TestAssemblyRefusesOtherSizes(t *testing.T) {
	svc := newRTService(t)
	tree := newRTTree(t, 5)
	root := tree.root(t, 4)
	p, s := svc.signBound(t, root, 4)
	if _, err := cose.NewInclusionReceipt(p, s, 4, 0, tree.inclusion(t, 4, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := cose.NewInclusionReceipt(p, s, 3, 0, tree.inclusion(t, 4, 0)); err == nil {
		t.Error("a size-4 head assembled an inclusion receipt for size 3")
	}
	if _, err := cose.NewConsistencyReceipt(p, s, 2, 4, tree.consistency(t, 2, 4)); err != nil {
		t.Fatal(err)
	}
	if _, err := cose.NewConsistencyReceipt(p, s, 2, 5, tree.consistency(t, 2, 5)); err == nil {
		t.Error("a size-4 head assembled a consistency receipt to size 5")
	}
	if _, err := cose.NewConsistencyReceipt(p, s, 2, 3, tree.consistency(t, 2, 3)); err == nil {
		t.Error("a size-4 head assembled a consistency receipt to size 3")
	}
}
