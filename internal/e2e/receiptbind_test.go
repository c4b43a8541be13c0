package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/cose/cosetest"
)

// TestReceiptBindSignedTreeSize is issue 14's attack against a real node
// and the real CLI: a receipt from `charter register`, rewritten to
// another (tree_size, leaf_index) whose inclusion path leads to the same
// signed root, must be refused by `charter verify`, naming both sizes;
// the untouched receipt verifies and its index is printed as signed.
func TestReceiptBindSignedTreeSize(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	n := startNode(t, filepath.Join(work, "node"))
	pub := newPublisher(t, "receiptbind publisher")
	cli := func(args ...string) (string, error) {
		t.Helper()
		return runCLI(t, work, args...)
	}
	if out, err := cli("keys", "--url", n.URL, "--cacert", n.CertPath, "--out", "keys.cbor"); err != nil {
		t.Fatalf("charter keys: %v\n%s", err, out)
	}

	// Register statements until one's receipt has a same-shape rewrite
	// (most positions have one; index 0 of a 1-leaf tree has none).
	var (
		ts, stmt, receipt []byte
		incl              cose.InclusionProof
		rewrite           [2]uint64
		found             bool
	)
	for try := 0; try < 8 && !found; try++ {
		stmtFile := fmt.Sprintf("s%d.cose", try)
		tsFile := fmt.Sprintf("s%d.ts.cose", try)
		if err := os.WriteFile(filepath.Join(work, stmtFile), pub.unique(t), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := cli("register", "--url", n.URL, "--cacert", n.CertPath, "--out", tsFile, stmtFile); err != nil {
			t.Fatalf("charter register: %v\n%s", err, out)
		}
		var err error
		if ts, err = os.ReadFile(filepath.Join(work, tsFile)); err != nil {
			t.Fatal(err)
		}
		var receipts [][]byte
		if stmt, receipts, err = cose.SplitTransparentStatement(ts); err != nil || len(receipts) != 1 {
			t.Fatalf("%s: %d receipts, %v", tsFile, len(receipts), err)
		}
		receipt = receipts[0]
		r, err := cose.ParseReceipt(receipt)
		if err != nil || len(r.Inclusion) != 1 {
			t.Fatalf("receipt: %v", err)
		}
		incl = r.Inclusion[0]
		// The node signs the size of the tree the proof is for.
		if r.Claims.TreeSize != incl.TreeSize {
			t.Fatalf("receipt signs tree size %d, its proof is for %d", r.Claims.TreeSize, incl.TreeSize)
		}
		rewrite, found = sameShapeRewrite(t, stmt, incl)
	}
	if !found {
		t.Fatal("no registration of 8 has a same-shape (tree_size, leaf_index) rewrite")
	}

	// The genuine transparent statement verifies; the index is signed.
	if err := os.WriteFile(filepath.Join(work, "s.ts.cose"), ts, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := cli("verify", "--service-keys", "keys.cbor", "s.ts.cose")
	if err != nil {
		t.Fatalf("charter verify of the genuine statement: %v\n%s", err, out)
	}
	want := fmt.Sprintf("leaf index %d of %d (", incl.LeafIndex, incl.TreeSize)
	if !strings.Contains(out, "ok   receipt 1 (") || !strings.Contains(out, want) || strings.Contains(out, "not signed") {
		t.Fatalf("charter verify of the genuine statement does not print %q as signed:\n%s", want, out)
	}
	if out, err := cli("receipt", "show", "s.ts.cose"); err != nil || !strings.Contains(out, fmt.Sprintf("  signed size      %d\n", incl.TreeSize)) {
		t.Errorf("charter receipt show: %v\n%s", err, out)
	}

	// The rewritten one is refused.
	forged, err := cose.AttachReceipts(stmt, rewriteReceiptProof(t, receipt, rewrite[0], rewrite[1]))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "forged.ts.cose"), forged, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = cli("verify", "--service-keys", "keys.cbor", "forged.ts.cose")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("charter verify of a receipt rewritten from (%d, %d) to (%d, %d): %v, want exit 1\n%s",
			incl.TreeSize, incl.LeafIndex, rewrite[0], rewrite[1], err, out)
	}
	wantFail := fmt.Sprintf("FAIL receipt 1: receipt proof is not for the signed tree size: the inclusion proof is for tree size %d, but the service signed tree size %d", rewrite[0], incl.TreeSize)
	if !strings.Contains(out, wantFail) || !strings.Contains(out, "ok   statement signature") || strings.Contains(out, "ok   receipt") {
		t.Fatalf("charter verify of the rewritten receipt does not say %q:\n%s", wantFail, out)
	}
	t.Logf("receipt (%d, %d) rewritten to (%d, %d):\n%s", incl.TreeSize, incl.LeafIndex, rewrite[0], rewrite[1], out)
}

// sameShapeRewrite finds a (tree_size, leaf_index) other than p's, with
// tree_size up to twice p's, from which p's path leads to the same root:
// a rewrite that only the signed tree size can refuse.
func sameShapeRewrite(t *testing.T, stmt []byte, p cose.InclusionProof) ([2]uint64, bool) {
	t.Helper()
	st, err := cose.ParseStatement(stmt, cose.ParseOptions{MaxSize: len(stmt)})
	if err != nil {
		t.Fatal(err)
	}
	entry := st.LeafEntry()
	h := rfc6962.DefaultHasher
	leaf := h.HashLeaf(entry[:])
	root, err := proof.RootFromInclusionProof(h, p.LeafIndex, p.TreeSize, leaf, p.Path)
	if err != nil {
		t.Fatal(err)
	}
	for size := uint64(1); size <= 2*p.TreeSize; size++ {
		for idx := range size {
			if size == p.TreeSize && idx == p.LeafIndex {
				continue
			}
			if got, err := proof.RootFromInclusionProof(h, idx, size, leaf, p.Path); err == nil && bytes.Equal(got, root) {
				return [2]uint64{size, idx}, true
			}
		}
	}
	return [2]uint64{}, false
}

// rewriteReceiptProof replaces the inclusion proof's tree_size and
// leaf_index, as anyone holding the receipt can (cosetest.RewriteProof).
func rewriteReceiptProof(t *testing.T, receipt []byte, size, index uint64) []byte {
	t.Helper()
	r, err := cosetest.RewriteProof(receipt, cosetest.SetProof(size, index))
	if err != nil {
		t.Fatal(err)
	}
	return r
}
