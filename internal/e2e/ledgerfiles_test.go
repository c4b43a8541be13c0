package e2e

import (
	"bytes"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/ledgerfiles"
	"github.com/charterlog/charter/log"
)

// TestLedgerFiles: every node writes its ledger as chunk files in
// DATA/ledger; after a kill -9 and a restart they hold every transaction,
// the same bytes on every node, read back whole, and pass `charter ledger
// verify`, which finds each kind of damage and says which.
func TestLedgerFiles(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{LedgerChunkTransactions: 20})
	pub := newPublisher(t, "e2e ledger files publisher")
	h := &history{}
	reg := oneByOne(t, c, pub, h)
	reg(10, 1, 2, 3)
	c.kill9(3)
	reg(10, 1, 2)
	c.restart(3)
	reg(5, 3, 1, 2)
	settled := c.waitSettled(30*time.Second, 1, 2, 3)

	// A backup over HTTP: the complete chunks, resumed after an
	// interruption, check offline.
	backup := t.TempDir()
	n1 := c.node(1)
	if out, err := runCLI(t, c.dir, "ledger", "download", "--quiet", "--url", n1.URL, "--cacert", c.certPath, "--out", backup); err != nil {
		t.Fatalf("charter ledger download: %v\n%s", err, out)
	}
	os.Remove(filepath.Join(backup, "ledger_21-40.committed"))
	os.MkdirAll(filepath.Join(backup, ".partial"), 0o755)
	half := mustRead(t, filepath.Join(n1.dataDir, "ledger", "ledger_21-40.committed"))
	os.WriteFile(filepath.Join(backup, ".partial", "ledger_21-40.committed"), half[:len(half)/2], 0o644)
	out, err := runCLI(t, c.dir, "ledger", "download", "--quiet", "--url", n1.URL, "--cacert", c.certPath, "--out", backup)
	if err != nil || !strings.Contains(out, "1 fetched") {
		t.Fatalf("resumed download: %v\n%s", err, out)
	}
	if out, err := runCLI(t, c.dir, "ledger", "verify", "--quiet", "--service-cert", c.certPath, backup); err != nil {
		t.Fatalf("verify of the download: %v\n%s", err, out)
	}
	for _, p := range []string{"/node/ledger/chunks/ledger_1", "/node/ledger/chunks/..%2Fnode.url", "/node/ledger/chunks/ledger_1-999.committed"} {
		if r := n1.get(t, p); r.Status != 404 {
			t.Errorf("GET %s: %d, want 404", p, r.Status)
		}
	}
	for i := 1; i <= 3; i++ {
		c.stop(i) // the files are synced on a clean stop
	}
	var ref [][]byte
	for i := 1; i <= 3; i++ {
		var recs [][]byte
		last, err := ledgerfiles.Scan(filepath.Join(c.node(i).dataDir, "ledger"), func(_ uint64, raw []byte) error {
			recs = append(recs, bytes.Clone(raw))
			return nil
		})
		if err != nil {
			t.Fatalf("node %d's ledger files: %v", i, err)
		}
		if last != settled.LedgerSize {
			t.Fatalf("node %d's ledger files hold %d transactions, its ledger %d", i, last, settled.LedgerSize)
		}
		if ref == nil {
			ref = recs
			continue
		}
		for k := range recs {
			if !bytes.Equal(recs[k], ref[k]) {
				t.Fatalf("transaction %d differs between node 1's files and node %d's", k+1, i)
			}
		}
	}
	t.Logf("3 nodes' ledger files hold the same %d transactions", settled.LedgerSize)

	ledgerDir := filepath.Join(c.node(1).dataDir, "ledger")
	out, err = runCLI(t, c.dir, "ledger", "verify", "--quiet", "--service-cert", c.certPath, ledgerDir)
	if err != nil {
		t.Fatalf("charter ledger verify: %v\n%s", err, out)
	}
	t.Logf("charter ledger verify:\n%s", out)
	for _, want := range []string{fmt.Sprintf("%d transactions in", settled.LedgerSize), "checkpoints", ": ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q", want)
		}
	}
	// Another network's certificate: these are not its files.
	other := filepath.Join(t.TempDir(), "other.pem")
	os.WriteFile(other, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: newPublisher(t, "another service").chain[0]}), 0o644)
	if out, err := runCLI(t, c.dir, "ledger", "verify", "--quiet", "--service-cert", other, ledgerDir); err == nil || !strings.Contains(out, "another network") {
		t.Errorf("verify against another service certificate: %v\n%s", err, out)
	}

	// Damage, each on a copy, each found and named.
	recs := ref
	for _, d := range []struct {
		name   string
		damage func(dir string)
		says   string
	}{
		{"flipped byte", func(dir string) {
			p := filepath.Join(dir, "ledger_21-40.committed")
			b := mustRead(t, p)
			b[len(b)/2] ^= 0x10
			os.WriteFile(p, b, 0o644)
		}, "ledger_21-40.committed does not match its digest"},
		{"removed transactions", func(dir string) {
			os.Remove(filepath.Join(dir, "ledger_21-40.committed"))
		}, "transactions missing: 21 to 40"},
		{"truncated chunk", func(dir string) {
			p := filepath.Join(dir, "ledger_21-40.committed")
			b := mustRead(t, p)
			os.WriteFile(p, b[:len(b)-100], 0o644)
		}, "truncated chunk"},
		{"forged checkpoint", func(dir string) {
			// The forger re-encodes the record with a signature of its own
			// making and its entry recomputed, and rewrites the chunks
			// whole: every file is well-formed, the history is not.
			forged := forgeCheckpoint(t, recs)
			writeChunks(t, dir, forged, 20)
		}, "is not the service key's"},
	} {
		dir := t.TempDir()
		copyDir(t, ledgerDir, dir)
		d.damage(dir)
		out, err := runCLI(t, c.dir, "ledger", "verify", "--quiet", dir)
		if err == nil || !strings.Contains(out, d.says) {
			t.Errorf("%s: verify said %v\n%s\nwant an error saying %q", d.name, err, out, d.says)
		}
	}
}

// forgeCheckpoint returns recs with the first checkpoint's signature
// altered and its record's entry recomputed, as a forger would.
func forgeCheckpoint(t *testing.T, recs [][]byte) [][]byte {
	t.Helper()
	out := slices.Clone(recs)
	for i, raw := range recs {
		rec, err := log.UnmarshalRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Type != log.TxCheckpoint {
			continue
		}
		cp, err := log.UnmarshalCheckpoint(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		cp.Signature = bytes.Clone(cp.Signature)
		cp.Signature[5] ^= 1
		if rec.Body, err = log.MarshalCheckpoint(cp); err != nil {
			t.Fatal(err)
		}
		rec.Entry = log.ComputeEntry(rec.Type, rec.View, rec.Seqno, rec.Body)
		if out[i], err = log.MarshalRecord(rec); err != nil {
			t.Fatal(err)
		}
		return out
	}
	t.Fatal("no checkpoint in the ledger")
	return nil
}

// writeChunks replaces the chunk files in dir with recs, chunked by n.
func writeChunks(t *testing.T, dir string, recs [][]byte, n uint64) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		os.Remove(filepath.Join(dir, e.Name()))
	}
	w, err := ledgerfiles.OpenWriter(dir, 0, n)
	if err != nil {
		t.Fatal(err)
	}
	for i, raw := range recs {
		if err := w.Append(uint64(i+1), raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.WriteFile(filepath.Join(to, e.Name()), mustRead(t, filepath.Join(from, e.Name())), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
