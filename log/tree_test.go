package log_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"

	clog "github.com/charterlog/charter/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

// memHashes is the backing store of a tree in tests: the durable stored
// hashes. It fails a read of a hash it does not hold, so a Tree that relies
// on the backing for a hash it never made durable is caught.
type memHashes struct {
	m     map[int64]tlog.Hash
	reads int // indexes read
}

func newMemHashes() *memHashes { return &memHashes{m: map[int64]tlog.Hash{}} }

func (s *memHashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := s.m[x]
		if !ok {
			return nil, fmt.Errorf("memHashes: no stored hash %d", x)
		}
		out[i] = h
	}
	s.reads += len(indexes)
	return out, nil
}

func (s *memHashes) write(i int64, h tlog.Hash) { s.m[i] = h }

// entryOf is the test's leaf entry i: SHA-256 of i as 8 big-endian bytes.
func entryOf(i int) [32]byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(i))
	return sha256.Sum256(b[:])
}

// refRoot is RFC 6962 / RFC 9162 §2.1.1 MTH over leaf hashes, written out
// independently of tlog so the tree is checked against the spec.
func refRoot(leaves [][]byte) []byte {
	h := rfc6962.DefaultHasher
	switch n := len(leaves); n {
	case 0:
		return h.EmptyRoot()
	case 1:
		return leaves[0]
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		return h.HashChildren(refRoot(leaves[:k]), refRoot(leaves[k:]))
	}
}

const treeMax = 300

// buildTree appends leaves 0..n-1, committing each to the backing.
func buildTree(t testing.TB, n int) (*clog.Tree, *memHashes, [][]byte) {
	t.Helper()
	back := newMemHashes()
	tr := clog.NewTree(0, back)
	var leafHashes [][]byte
	for i := range n {
		e := entryOf(i)
		idx, err := tr.Append(e, back.write)
		if err != nil {
			t.Fatal(err)
		}
		if idx != int64(i) {
			t.Fatalf("Append %d returned index %d", i, idx)
		}
		tr.Committed()
		leafHashes = append(leafHashes, rfc6962.DefaultHasher.HashLeaf(e[:]))
	}
	return tr, back, leafHashes
}

func TestTreeRootsMatchRFC6962(t *testing.T) {
	tr, _, leaves := buildTree(t, treeMax)
	if tr.Size() != treeMax {
		t.Fatalf("Size = %d, want %d", tr.Size(), treeMax)
	}
	for n := 1; n <= treeMax; n++ {
		got, err := tr.Root(int64(n))
		if err != nil {
			t.Fatalf("Root(%d): %v", n, err)
		}
		if want := refRoot(leaves[:n]); !bytes.Equal(got[:], want) {
			t.Fatalf("Root(%d) = %x, want %x", n, got, want)
		}
	}
}

// flipEach calls f with copies of p that have one bit flipped in one hash:
// every bit when all is set, else one bit per hash (a different one for each
// hash), so every hash of every proof is mangled.
func flipEach(p [][]byte, all bool, f func(bad [][]byte, i, bit int)) {
	for i := range p {
		for bit := 0; bit < 8*len(p[i]); bit++ {
			if !all && bit != (i*37+5)%(8*len(p[i])) {
				continue
			}
			bad := make([][]byte, len(p))
			copy(bad, p)
			bad[i] = append([]byte(nil), p[i]...)
			bad[i][bit/8] ^= 1 << (bit % 8)
			f(bad, i, bit)
		}
	}
}

func TestTreeInclusionProofs(t *testing.T) {
	t.Parallel()
	tr, _, leaves := buildTree(t, treeMax)
	hasher := rfc6962.DefaultHasher
	for n := 1; n <= treeMax; n++ {
		root := refRoot(leaves[:n])
		for i := 0; i < n; i++ {
			p, err := tr.InclusionProof(int64(n), int64(i))
			if err != nil {
				t.Fatalf("InclusionProof(%d, %d): %v", n, i, err)
			}
			if err := proof.VerifyInclusion(hasher, uint64(i), uint64(n), leaves[i], p, root); err != nil {
				t.Fatalf("InclusionProof(%d, %d) does not verify: %v", n, i, err)
			}
			// Mangle every bit of every hash for the small trees (as
			// tlog's TestTree); beyond that, one bit per hash keeps it fast.
			flipEach(p, n <= 24, func(bad [][]byte, j, bit int) {
				if proof.VerifyInclusion(hasher, uint64(i), uint64(n), leaves[i], bad, root) == nil {
					t.Fatalf("InclusionProof(%d, %d) with bit %d of hash %d flipped verifies", n, i, bit, j)
				}
			})
			if i > 0 && proof.VerifyInclusion(hasher, uint64(i), uint64(n), leaves[i-1], p, root) == nil {
				t.Fatalf("InclusionProof(%d, %d) verifies leaf %d", n, i, i-1)
			}
		}
	}
}

func TestTreeConsistencyProofs(t *testing.T) {
	t.Parallel()
	tr, _, leaves := buildTree(t, treeMax)
	hasher := rfc6962.DefaultHasher
	roots := make([][]byte, treeMax+1)
	for n := 1; n <= treeMax; n++ {
		roots[n] = refRoot(leaves[:n])
	}
	for n := 1; n <= treeMax; n++ {
		for m := 1; m <= n; m++ {
			p, err := tr.ConsistencyProof(int64(m), int64(n))
			if err != nil {
				t.Fatalf("ConsistencyProof(%d, %d): %v", m, n, err)
			}
			if err := proof.VerifyConsistency(hasher, uint64(m), uint64(n), p, roots[m], roots[n]); err != nil {
				t.Fatalf("ConsistencyProof(%d, %d) does not verify: %v", m, n, err)
			}
			flipEach(p, n <= 24, func(bad [][]byte, j, bit int) {
				if proof.VerifyConsistency(hasher, uint64(m), uint64(n), bad, roots[m], roots[n]) == nil {
					t.Fatalf("ConsistencyProof(%d, %d) with bit %d of hash %d flipped verifies", m, n, bit, j)
				}
			})
			if m < n && proof.VerifyConsistency(hasher, uint64(m), uint64(n), p, roots[m], roots[n-1]) == nil && !bytes.Equal(roots[n], roots[n-1]) {
				t.Fatalf("ConsistencyProof(%d, %d) verifies against root %d", m, n, n-1)
			}
		}
	}
}

func TestTreeErrors(t *testing.T) {
	tr, _, _ := buildTree(t, 10)
	for _, n := range []int64{0, -1, 11, 1 << 40} {
		if _, err := tr.Root(n); err == nil {
			t.Errorf("Root(%d) on a tree of 10: no error", n)
		}
	}
	for _, c := range [][2]int64{{0, 0}, {10, 10}, {10, 11}, {11, 0}, {5, -1}, {1 << 40, 3}} {
		if _, err := tr.InclusionProof(c[0], c[1]); err == nil {
			t.Errorf("InclusionProof(%d, %d) on a tree of 10: no error", c[0], c[1])
		}
	}
	for _, c := range [][2]int64{{0, 5}, {6, 5}, {10, 9}, {3, 11}, {-1, 4}} {
		if _, err := tr.ConsistencyProof(c[0], c[1]); err == nil {
			t.Errorf("ConsistencyProof(%d, %d) on a tree of 10: no error", c[0], c[1])
		}
	}
	if _, err := clog.NewTree(0, newMemHashes()).Root(1); err == nil {
		t.Error("Root(1) of an empty tree: no error")
	}
}

// A backing reader that errors must surface its error, not a made-up hash.
func TestTreeBackingError(t *testing.T) {
	tr, back, _ := buildTree(t, 40)
	// A fresh Tree over the same store has nothing cached: every read
	// goes to the backing.
	fresh := clog.NewTree(40, back)
	want, _ := tr.Root(40)
	got, err := fresh.Root(40)
	if err != nil || got != want {
		t.Fatalf("fresh Root(40) = %x, %v; want %x", got, err, want)
	}
	back.m = map[int64]tlog.Hash{}
	// What a Tree read from its backing it keeps (a durable hash never
	// changes): the same root again needs no read.
	if again, err := fresh.Root(40); err != nil || again != want {
		t.Fatalf("Root(40) again = %x, %v; want %x from what was read before", again, err, want)
	}
	fresh = clog.NewTree(40, back)
	if _, err := fresh.Root(40); err == nil {
		t.Fatal("Root over a backing that lost its hashes: no error")
	}
	if _, err := fresh.InclusionProof(40, 3); err == nil {
		t.Fatal("InclusionProof over a backing that lost its hashes: no error")
	}
	// Appending leaf 39 (0b100111) combines it with three stored subtree
	// roots, which only the backing has.
	fresh = clog.NewTree(39, back)
	if _, err := fresh.Append(entryOf(39), func(int64, tlog.Hash) {}); err == nil {
		t.Fatal("Append over a backing that lost its hashes: no error")
	}
	if fresh.Size() != 39 {
		t.Fatalf("failed Append changed Size to %d", fresh.Size())
	}
}

// shortReader returns fewer hashes than asked: Tree must refuse, not index
// out of range.
type shortReader struct{}

func (shortReader) ReadHashes(ix []int64) ([]tlog.Hash, error) {
	if len(ix) == 0 {
		return nil, nil
	}
	return make([]tlog.Hash, len(ix)-1), nil
}

func TestTreeShortBackingRead(t *testing.T) {
	tr := clog.NewTree(8, shortReader{})
	if _, err := tr.Root(8); err == nil {
		t.Fatal("Root with a backing that returned too few hashes: no error")
	}
}

// TestTreeCacheRotation appends well over two cache generations, persisting
// each leaf's hashes only at commit (as the ledger does), and checks that old
// hashes are read from the backing once rotated out and that proofs stay
// right across the whole tree.
func TestTreeCacheRotation(t *testing.T) {
	const n = 70_000 // > 2 generations of 1<<15 stored hashes (≈2 per leaf)
	back := newMemHashes()
	tr := clog.NewTree(0, back)
	var leaves [][]byte
	pending := map[int64]tlog.Hash{}
	for i := range n {
		e := entryOf(i)
		if _, err := tr.Append(e, func(x int64, h tlog.Hash) { pending[x] = h }); err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf(e[:]))
		if i%100 == 99 || i == n-1 {
			for x, h := range pending {
				back.m[x] = h
			}
			clear(pending)
			tr.Committed()
		}
	}
	// Appends read the backing only for the roots of subtrees completed
	// two generations ago: a handful of hashes, not one per append.
	if back.reads > 16 {
		t.Errorf("appends read %d hashes from the backing; want a handful (recent hashes are cached)", back.reads)
	}
	t.Logf("appends read %d hashes from the backing", back.reads)
	// Leaf 0's hash was written two generations ago: it must come from the
	// backing now.
	before := back.reads
	p, err := tr.InclusionProof(n, 0)
	if err != nil {
		t.Fatal(err)
	}
	if back.reads == before {
		t.Error("proof for leaf 0 after two cache rotations read nothing from the backing")
	}
	root, err := tr.Root(n)
	if err != nil {
		t.Fatal(err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, 0, n, leaves[0], p, root[:]); err != nil {
		t.Fatalf("InclusionProof(%d, 0) after rotation: %v", n, err)
	}
	for _, m := range []int{1, 2, 1000, 16383, 16384, 16385, 32768, 40000, n - 1} {
		root1, err := tr.Root(int64(m))
		if err != nil {
			t.Fatal(err)
		}
		cp, err := tr.ConsistencyProof(int64(m), n)
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, uint64(m), n, cp, root1[:], root[:]); err != nil {
			t.Fatalf("ConsistencyProof(%d, %d): %v", m, n, err)
		}
		ip, err := tr.InclusionProof(n, int64(m-1))
		if err != nil {
			t.Fatal(err)
		}
		if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(m-1), n, leaves[m-1], ip, root[:]); err != nil {
			t.Fatalf("InclusionProof(%d, %d): %v", n, m-1, err)
		}
	}
	// A reference check of the final root with a compact computation.
	if want := refRoot(leaves); !bytes.Equal(root[:], want) {
		t.Fatalf("Root(%d) = %x, want %x", n, root, want)
	}
}

// TestTreeRollback: leaves appended by a batch that failed to commit are
// forgotten; appending again (the same or other entries) gives the roots a
// tree that never saw them would.
func TestTreeRollback(t *testing.T) {
	for _, committed := range []int{0, 1, 7, 64, 100} {
		t.Run(fmt.Sprint(committed), func(t *testing.T) {
			back := newMemHashes()
			tr := clog.NewTree(0, back)
			for i := range committed {
				if _, err := tr.Append(entryOf(i), back.write); err != nil {
					t.Fatal(err)
				}
			}
			tr.Committed()
			// A batch of 37 leaves with other entries that is never made
			// durable: its hashes go nowhere.
			for i := range 37 {
				if _, err := tr.Append(entryOf(1_000_000+i), func(int64, tlog.Hash) {}); err != nil {
					t.Fatal(err)
				}
			}
			tr.Rollback(int64(committed))
			if tr.Size() != int64(committed) {
				t.Fatalf("Size after Rollback = %d, want %d", tr.Size(), committed)
			}
			if _, err := tr.Root(int64(committed) + 1); err == nil {
				t.Fatal("Root beyond the rolled-back size: no error")
			}
			// Rollback to a larger size is a no-op.
			tr.Rollback(int64(committed) + 5)
			if tr.Size() != int64(committed) {
				t.Fatalf("Rollback to a larger size changed Size to %d", tr.Size())
			}
			var leaves [][]byte
			for i := range committed + 50 {
				e := entryOf(i)
				leaves = append(leaves, rfc6962.DefaultHasher.HashLeaf(e[:]))
				if i < committed {
					continue
				}
				if _, err := tr.Append(e, back.write); err != nil {
					t.Fatal(err)
				}
			}
			tr.Committed()
			for n := 1; n <= len(leaves); n++ {
				got, err := tr.Root(int64(n))
				if err != nil {
					t.Fatal(err)
				}
				if want := refRoot(leaves[:n]); !bytes.Equal(got[:], want) {
					t.Fatalf("Root(%d) after Rollback and re-append = %x, want %x", n, got, want)
				}
			}
			// And over the backing alone, as after a restart.
			fresh := clog.NewTree(int64(len(leaves)), back)
			got, err := fresh.Root(int64(len(leaves)))
			if err != nil {
				t.Fatal(err)
			}
			if want := refRoot(leaves); !bytes.Equal(got[:], want) {
				t.Fatalf("restarted Root = %x, want %x", got, want)
			}
		})
	}
}
