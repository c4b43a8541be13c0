package e2e

import (
	"fmt"
	"testing"
	"time"
)

// TestClusterFarBehindSnapshot stops node 3, registers far more raft
// entries than snapshot_entries while it is down, restarts it, and checks
// that it catches up by installing a snapshot and then serves the same,
// verifying receipts as node 1 for entries registered before the stop,
// during it and after the restart, and proves its tree consistent with
// every checkpoint seen.
func TestClusterFarBehindSnapshot(t *testing.T) {
	const during = 300
	c := startCluster(t, 3, clusterOpts{SnapshotEntries: 20, CheckpointInterval: 10 * time.Millisecond})
	watch := watchCheckpoints(c)
	pub := newPublisher(t, "e2e snapshot publisher")
	h := &history{}
	reg := oneByOne(t, c, pub, h)
	reg(10, 1, 2, 3)
	before := len(h.acked())
	c.stop(3)

	start := time.Now()
	reg(during, 1) // one at a time: each its own raft entry, plus checkpoints
	t.Logf("registered %d statements one at a time through node 1 in %v while node 3 was down", during, time.Since(start))
	behind, _, err := c.node(1).clusterHealth()
	if err != nil {
		t.Fatal(err)
	}

	restartAt := time.Now()
	c.restart(3)
	settled := c.waitSettled(30*time.Second, 1, 2, 3)
	t.Logf("node 3 caught up to ledger size %d (was %d behind node 1's %d at restart) %v after its restart",
		settled.LedgerSize, during, behind.LedgerSize, time.Since(restartAt))
	if !c.logContains(3, "installing snapshot") {
		t.Errorf("node 3's log has no \"installing snapshot\": it did not catch up through a snapshot with snapshot_entries=20")
	}
	// What node 3 was sent after its restart is relative to the ledger it
	// held (at least the 10 statements registered before the stop), not
	// the whole ledger again.
	var sent []map[string]any
	for _, i := range []int{1, 2} {
		for _, rec := range c.logRecords(i, "sent snapshot") {
			at, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(rec["time"]))
			if rec["peer"] == float64(3) && at.After(restartAt) {
				sent = append(sent, rec)
			}
		}
	}
	if len(sent) == 0 {
		t.Errorf("neither node 1 nor node 2 logged \"sent snapshot\" to node 3 after its restart")
	}
	for _, rec := range sent {
		t.Logf("sent node 3 a snapshot of %v bytes relative to its ledger of %v transactions", rec["bytes"], rec["ledger_from"])
		if from, _ := rec["ledger_from"].(float64); from < 10 {
			t.Errorf("snapshot sent to node 3 relative to ledger size %v; it held at least 10 transactions", rec["ledger_from"])
		}
	}

	reg(10, 3, 1, 2) // through the restarted node first: it forwards to the leader
	c.waitSettled(15*time.Second, 1, 2, 3)
	acked := h.acked()
	if len(acked) != before+during+10 {
		t.Fatalf("%d acknowledged registrations, want %d", len(acked), before+during+10)
	}
	// Node 3's receipts for entries from before the stop, during it and
	// after the restart must be node 1's byte for byte (and the client's).
	checkEntries(t, c, acked, 3, 1, 2)
	checkSameTree(t, c, 1, 2, 3)
	// Node 3 proves every checkpoint ever seen (most were made while it
	// was down) consistent with its own newest tree.
	watch.check(t, 3)
}

// oneByOne returns reg(n, via...): n registrations one after another, each
// its own raft entry, through the nodes via in turn, each recorded in h and
// fatal if it fails.
func oneByOne(t *testing.T, c *cluster, pub *publisher, h *history) func(n int, via ...int) {
	return func(n int, via ...int) {
		t.Helper()
		for k := range n {
			o := c.register(pub.unique(t), 20*time.Second, via[k%len(via)])
			h.add(o)
			if o.Err != nil {
				t.Fatalf("registering through node %d: %v", via[k%len(via)], o.Err)
			}
		}
	}
}
