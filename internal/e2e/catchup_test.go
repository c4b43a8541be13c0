package e2e

import (
	"sync"
	"testing"
	"time"
)

// TestClusterRestartCatchesUpFromLog kills a follower with SIGKILL, keeps
// registering through the leader until its raft log has grown by far more
// than a follower keeps (and long after the leader stopped counting the
// follower as active), restarts it, and checks that it catches up from the
// leader's log: no snapshot is sent or installed, with the default
// retention settings.
func TestClusterRestartCatchesUpFromLog(t *testing.T) {
	const grow = 2500 // raft entries written while the follower is down
	c := startCluster(t, 3, clusterOpts{CheckpointInterval: 10 * time.Millisecond})
	pub := newPublisher(t, "e2e catch-up publisher")
	for k := range 6 {
		c.mustRegister(pub.unique(t), k%3+1)
	}
	lead, term := c.leader()
	down := lead%3 + 1
	c.waitSettled(15*time.Second, 1, 2, 3)
	sent := 0
	for i := 1; i <= 3; i++ {
		sent += c.logCount(i, "sent snapshot")
	}
	installed := c.logCount(down, "installing snapshot")

	c.kill9(down)
	cs, err := c.node(lead).consensus()
	if err != nil {
		t.Fatal(err)
	}
	from := cs.CommitIndex
	killedAt := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	registered := 0
	stop := make(chan struct{})
	var stopOnce sync.Once
	stopLoad := func() { stopOnce.Do(func() { close(stop); wg.Wait() }) }
	// The publishers end before the test does, even when it fails: a
	// publisher's t.Errorf after the test returned would panic the package.
	defer stopLoad()
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if o := c.register(pub.unique(t), 20*time.Second, lead); o.Err != nil {
					t.Errorf("registering through node %d: %v", lead, o.Err)
					return
				}
				mu.Lock()
				registered++
				mu.Unlock()
			}
		}()
	}
	// Within a minute: on a loaded machine (make test runs packages in
	// parallel) the publishers are slower than alone.
	waitUntil(t, 60*time.Second, "the leader's raft log to grow", func() bool {
		cs, err := c.node(lead).consensus()
		return err == nil && cs.CommitIndex >= from+grow
	})
	stopLoad()
	t.Logf("node %d down: %d statements registered, raft commit index %d -> %d+, in %v", down, registered, from, from+grow, time.Since(killedAt))

	restartAt := time.Now()
	c.restart(down)
	settled := c.waitSettled(30*time.Second, 1, 2, 3)
	t.Logf("node %d caught up to ledger size %d %v after its restart", down, settled.LedgerSize, time.Since(restartAt))
	after := 0
	for i := 1; i <= 3; i++ {
		after += c.logCount(i, "sent snapshot")
	}
	// The promise is about the leader's log. A follower keeps only a short
	// log (internal/replication maybeCompact), so if a starved leader lost
	// an election meanwhile (a loaded machine), the new leader may rightly
	// send a snapshot: then there is nothing to check here.
	if now, nowTerm := c.leader(down); now != lead || nowTerm != term {
		t.Logf("leadership moved from node %d (term %d) to node %d (term %d) while node %d was down: catch-up from the log is not this run's question", lead, term, now, nowTerm, down)
		checkSameTree(t, c, 1, 2, 3)
		return
	}
	if after != sent {
		t.Errorf("%d snapshots sent while node %d caught up; want none", after-sent, down)
	}
	if got := c.logCount(down, "installing snapshot"); got != installed {
		t.Errorf("node %d installed %d snapshots to catch up; want none", down, got-installed)
	}
	checkSameTree(t, c, 1, 2, 3)
}
