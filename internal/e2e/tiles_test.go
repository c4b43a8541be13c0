package e2e

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	clog "github.com/charterlog/charter/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// httpTiles is a tlog.TileReader over a node's /tile endpoints, as an
// auditor's client fetches them.
type httpTiles struct {
	t *testing.T
	n *node
}

func (h httpTiles) Height() int { return clog.TileHeight }

func (h httpTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		r := h.n.get(h.t, "/"+clog.TilePath(tile))
		if r.Status != http.StatusOK {
			return nil, fmt.Errorf("%s: %d %s", clog.TilePath(tile), r.Status, describeProblem(r))
		}
		if ct, cc := r.Header.Get("Content-Type"), r.Header.Get("Cache-Control"); ct != "application/octet-stream" || !strings.Contains(cc, "immutable") {
			h.t.Errorf("%s: Content-Type %q, Cache-Control %q", clog.TilePath(tile), ct, cc)
		}
		out[i] = r.Body
	}
	return out, nil
}

func (httpTiles) SaveTiles([]tlog.Tile, [][]byte) {}

// TestTiles audits a node through C2SP tlog-tiles alone: it checks the
// checkpoint's signature with /checkpoint/key, rebuilds the root from the
// served tiles (tlog checks every tile against it), and finds every leaf's
// entry in the entry bundles hashing to its leaf hash, each registered
// statement's entry at the leaf index of its receipt.
func TestTiles(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir())
	pub := newPublisher(t, "e2e tiles publisher")
	const workers, each = 13, 20 // 260 registrations, plus checkpoints: past one full tile
	regs := make([]*registration, workers*each)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				reg, err := n.register(pub.unique(t))
				if err != nil {
					t.Error(err)
					return
				}
				regs[w*each+i] = reg
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	cpResp := n.get(t, "/checkpoint")
	verifier, err := note.NewVerifier(strings.TrimSpace(string(n.get(t, "/checkpoint/key").Body)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(cpResp.Body, note.VerifierList(verifier)); err != nil {
		t.Fatalf("checkpoint does not verify with /checkpoint/key: %v", err)
	}
	cp, err := parseCheckpoint(cpResp.Body)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(cp.Size)
	if size <= 256 {
		t.Fatalf("tree of %d leaves: want more than one tile", size)
	}
	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: tlog.Hash(cp.Root)}, httpTiles{t, n})
	if root, err := tlog.TreeHash(size, hr); err != nil || root != tlog.Hash(cp.Root) {
		t.Fatalf("root from tiles %x, %v; checkpoint says %x", root, err, cp.Root)
	}

	// Every leaf's entry, from the bundles, hashes to its leaf in the
	// (proven) level-0 tiles.
	var entries [][32]byte
	for start := int64(0); start < size; start += 256 {
		tile := tlog.Tile{H: clog.TileHeight, L: -1, N: start / 256, W: int(min(256, size-start))}
		r := n.get(t, "/"+clog.TilePath(tile))
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", clog.TilePath(tile), r.Status, describeProblem(r))
		}
		got, err := clog.ParseEntryBundle(r.Body)
		if err != nil || len(got) != tile.W {
			t.Fatalf("%s: %d entries, %v; want %d", clog.TilePath(tile), len(got), err, tile.W)
		}
		entries = append(entries, got...)
	}
	indexes := make([]int64, size)
	for i := range indexes {
		indexes[i] = tlog.StoredHashIndex(0, int64(i))
	}
	leaves, err := hr.ReadHashes(indexes)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if want := rfc6962.DefaultHasher.HashLeaf(e[:]); tlog.Hash(want) != leaves[i] {
			t.Fatalf("entry %d of the bundles does not hash to leaf %d", i, i)
		}
	}
	for _, reg := range regs {
		if got := hex.EncodeToString(entries[reg.LeafIndex][:]); got != reg.ID {
			t.Errorf("leaf %d holds entry %s; its receipt was for %s", reg.LeafIndex, got, reg.ID)
		}
	}

	for path, want := range map[string]int{
		"/tile/0/0":                                   http.StatusBadRequest,
		"/tile/entries/000.p/0":                       http.StatusBadRequest,
		"/tile/8/0/000":                               http.StatusBadRequest,
		fmt.Sprintf("/tile/0/%03d", size/256):         http.StatusNotFound, // the partial tile's full form
		fmt.Sprintf("/tile/entries/%03d", 1+size/256): http.StatusNotFound,
		"/tile/2/000.p/1":                             http.StatusNotFound,
	} {
		r := n.get(t, path)
		if r.Status != want {
			t.Errorf("GET %s: %d %s; want %d", path, r.Status, describeProblem(r), want)
		} else if ct := r.Header.Get("Content-Type"); ct != "application/concise-problem-details+cbor" {
			t.Errorf("GET %s: %d with Content-Type %q, want problem details", path, r.Status, ct)
		}
	}
}

// TestLedgerAuditCLI runs `charter ledger audit` as an auditor would: a
// first full audit that saves the checkpoint, a later one that proves the
// log only grew since, and refusals of a wrong key and of another log's
// checkpoint.
func TestLedgerAuditCLI(t *testing.T) {
	t.Parallel()
	n := startNode(t, t.TempDir())
	pub := newPublisher(t, "e2e audit publisher")
	for range 3 {
		n.mustRegister(t, pub.unique(t))
	}
	dir := t.TempDir()
	svc := []string{"ledger", "audit", "--url", n.URL, "--cacert", n.CertPath}
	out, err := runCLI(t, dir, append(svc, "--entries", "--save", "first.cp")...)
	if err != nil {
		t.Fatalf("first audit: %v\n%s", err, out)
	}
	for _, want := range []string{"trusting the note key the service sent", "root rebuilt from the tiles: ok", "hash to their leaves: ok", "saved the checkpoint to first.cp"} {
		if !strings.Contains(out, want) {
			t.Errorf("first audit output lacks %q:\n%s", want, out)
		}
	}

	for range 3 {
		n.mustRegister(t, pub.unique(t))
	}
	key := strings.TrimSpace(string(n.get(t, "/checkpoint/key").Body))
	out, err = runCLI(t, dir, append(svc, "--note-key", key, "--since", "first.cp", "--save", "second.cp", "--entries")...)
	if err != nil {
		t.Fatalf("second audit: %v\n%s", err, out)
	}
	if !strings.Contains(out, "extends the checkpoint of size") || strings.Contains(out, "trusting the note key") ||
		!strings.Contains(out, "hash to their leaves: ok") {
		t.Errorf("second audit output:\n%s", out)
	}

	// A key that is not the log's, and a checkpoint of another log.
	otherSigner, otherKey, err := note.GenerateKey(nil, "other.example/log")
	if err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, dir, append(svc, "--note-key", otherKey)...)
	if err == nil || !strings.Contains(out, "the newest checkpoint") {
		t.Errorf("audit with another log's key: %v\n%s", err, out)
	}
	signer, err := note.NewSigner(otherSigner)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := clog.SignCheckpointNote("other.example/log", 1, [32]byte{}, signer)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "foreign.cp"), foreign, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runCLI(t, dir, append(svc, "--note-key", key, "--since", "foreign.cp")...)
	if err == nil || !strings.Contains(out, "the previous checkpoint") {
		t.Errorf("audit since another log's checkpoint: %v\n%s", err, out)
	}
}
