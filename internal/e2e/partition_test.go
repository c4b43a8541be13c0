package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// TestClusterPartition cuts the leader off from both followers, in both
// directions, through the per-link proxies, under load. The majority must
// elect a new leader within 5 s and keep registering; the old leader must
// never answer 201 while cut off; after healing, the old leader follows and
// catches up, and the client history and every checkpoint seen pass the
// history and fork checks.
func TestClusterPartition(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{Proxies: true})
	watch := watchCheckpoints(c)
	h := &history{}
	ld := startLoad(t, c, h, 6, []int{1, 2, 3})

	ld.waitRound(t, 60*time.Second)
	old, oldTerm := c.leader()
	var majority []int
	for i := 1; i <= 3; i++ {
		if i != old {
			majority = append(majority, i)
			c.cut(old, i)
		}
	}
	cutAt := time.Now()
	t.Logf("cut leader node %d (term %d) off from nodes %v", old, oldTerm, majority)

	// Registrations sent straight to the old leader after the cut: 303 or
	// 503, never 201.
	pub := newPublisher(t, "e2e partition old-leader publisher")
	var wg sync.WaitGroup
	var mu sync.Mutex
	oldAnswers := map[int]int{}
	for k := range 4 {
		wg.Add(1)
		stmt := pub.unique(t)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(k) * 300 * time.Millisecond) // spreads the POSTs over the cut: pacing, not a wait
			r, err := c.node(old).do(http.MethodPost, "/entries", "application/cose", stmt)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Errorf("POST /entries to the cut-off old leader: %v", err)
				return
			}
			oldAnswers[r.Status]++
			if r.Status != http.StatusSeeOther && r.Status != http.StatusServiceUnavailable {
				t.Errorf("POST /entries to the cut-off old leader answered %d (%s), want 303 or 503", r.Status, describeProblem(r))
			}
		}()
	}

	// The majority elects a new leader within 5 s.
	var newLeader int
	var newTerm uint64
	waitUntil(t, time.Until(cutAt.Add(5*time.Second)), fmt.Sprintf("a node of the majority %v leads in a term beyond %d", majority, oldTerm), func() bool {
		for _, i := range majority {
			if cs, err := c.node(i).consensus(); err == nil && cs.State == "StateLeader" && cs.Term > oldTerm {
				newLeader, newTerm = i, cs.Term
			}
		}
		return newLeader != 0
	})
	t.Logf("node %d leads in term %d, %v after the cut", newLeader, newTerm, time.Since(cutAt))

	// Registrations through the majority succeed.
	for k := range 4 {
		via := majority[k%2]
		o := c.register(pub.unique(t), 15*time.Second, via)
		h.add(o)
		if o.Err != nil {
			t.Fatalf("registering through node %d of the majority: %v", via, o.Err)
		}
	}
	wg.Wait()
	t.Logf("the cut-off old leader answered %v", oldAnswers)
	// The load runs on against the partitioned network.
	ld.waitRound(t, 60*time.Second)
	afterCut := 0
	for _, o := range h.acked() {
		if o.Call.After(cutAt) {
			afterCut++
		}
	}
	if afterCut == 0 {
		t.Error("no registration sent after the cut was acknowledged")
	}

	c.heal()
	healAt := time.Now()
	// The old leader rejoins as a follower of the new one.
	eventually(t, 10*time.Second, fmt.Sprintf("old leader node %d follows another after healing", old), func() error {
		cs, err := c.node(old).consensus()
		if err != nil {
			return err
		}
		if cs.State != "StateFollower" || cs.Leader == 0 || cs.Leader == uint64(old) {
			return fmt.Errorf("%+v", cs)
		}
		t.Logf("old leader node %d follows node %d in term %d, %v after healing", old, cs.Leader, cs.Term, time.Since(healAt))
		return nil
	})
	ld.waitRound(t, 60*time.Second) // the load runs on against the healed network
	ld.stop()
	failIfFailed(t, h)
	settled := c.waitSettled(15*time.Second, 1, 2, 3)
	final, _ := c.leader()
	t.Logf("settled at ledger size %d with node %d leading; %d registrations acknowledged, %d sent after the cut",
		settled.LedgerSize, final, len(h.acked()), afterCut)

	acked := h.acked()
	checkLinearizable(t, acked)
	checkEntries(t, c, acked, 1, 2, 3)
	checkSameTree(t, c, 1, 2, 3)
	watch.check(t, final)
}
