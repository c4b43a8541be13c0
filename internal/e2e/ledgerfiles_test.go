package e2e

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/ledgerfiles"
)

// TestLedgerFiles: every node writes its ledger as chunk files in
// DATA/ledger; after a kill -9 and a restart they hold every transaction,
// the same bytes on every node, and read back whole.
func TestLedgerFiles(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	pub := newPublisher(t, "e2e ledger files publisher")
	h := &history{}
	reg := oneByOne(t, c, pub, h)
	reg(10, 1, 2, 3)
	c.kill9(3)
	reg(10, 1, 2)
	c.restart(3)
	reg(5, 3, 1, 2)
	settled := c.waitSettled(30*time.Second, 1, 2, 3)
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
}
