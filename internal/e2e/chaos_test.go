package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestChaos is the operator's chaos run (issue 15), long and so behind a
// switch: CHARTER_CHAOS=1 (`make chaos`). Under 32 publishers writing to
// all three nodes it runs CHARTER_CHAOS_ROUNDS (default 50) faults, each
// drawn from: kill -9 the leader, kill -9 a follower, kill -9 two nodes at
// once (quorum lost), each restarted after a random pause of up to 3 s;
// then a follower stays down for 30 s and must catch up without a snapshot.
// Then it checks the whole history (every acknowledged statement once,
// with the same receipt on every node; linearizable leaf order; one tree;
// no fork among the checkpoints served) and reports: acknowledged, lost,
// forks, the longest time without a 201, and snapshots sent.
func TestChaos(t *testing.T) {
	if os.Getenv("CHARTER_CHAOS") == "" {
		t.Skip("set CHARTER_CHAOS=1 (make chaos) to run the chaos test")
	}
	rounds := 50
	if s := os.Getenv("CHARTER_CHAOS_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CHARTER_CHAOS_ROUNDS=%q: want a positive number", s)
		}
		rounds = n
	}
	// CHARTER_CHAOS_SNAPSHOT_ENTRIES bounds the raft log by count, so that
	// restarts are caught up by snapshots (deltas) under the same faults.
	var snapshotEntries uint64
	if s := os.Getenv("CHARTER_CHAOS_SNAPSHOT_ENTRIES"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil || n < 1 {
			t.Fatalf("CHARTER_CHAOS_SNAPSHOT_ENTRIES=%q: want a positive number", s)
		}
		snapshotEntries = n
	}
	c := startCluster(t, 3, clusterOpts{SnapshotEntries: snapshotEntries})
	watch := watchCheckpoints(c)
	h := &history{}
	ld := startLoad(t, c, h, 32, []int{1, 2, 3})
	start := time.Now()
	kinds := map[string]int{}
	for r := range rounds {
		// Pacing: the load runs a random while between rounds.
		time.Sleep(time.Duration(500+rand.IntN(1500)) * time.Millisecond)
		lead, _ := c.leader()
		var victims []int
		switch kind := []string{"leader", "follower", "quorum"}[rand.IntN(3)]; kind {
		case "leader":
			victims = []int{lead}
			kinds[kind]++
		case "follower":
			victims = []int{lead%3 + 1}
			kinds[kind]++
		case "quorum":
			victims = []int{lead, lead%3 + 1}
			kinds[kind]++
		}
		for _, v := range victims {
			c.kill9(v)
		}
		// The outage itself, of a random length: not a wait.
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Millisecond)
		for _, v := range victims {
			c.restart(v)
		}
		t.Logf("round %d/%d: killed %v (leader %d); %d acknowledged so far", r+1, rounds, victims, lead, len(h.acked()))
	}
	// A follower down for 30 s under load catches up from the leader's
	// log: no snapshot is sent for it.
	lead, _ := c.leader()
	down := lead%3 + 1
	sentBefore := 0
	for i := 1; i <= 3; i++ {
		sentBefore += c.logCount(i, "sent snapshot")
	}
	c.kill9(down)
	behindFrom := len(h.acked())
	time.Sleep(30 * time.Second) // the outage under test: 30 s down, not a wait
	behind := len(h.acked()) - behindFrom
	leaderNow, _ := c.leader(down)
	target, _, err := c.node(leaderNow).clusterHealth()
	if err != nil {
		t.Fatal(err)
	}
	restartAt := time.Now()
	c.restart(down)
	// Under load the ledger never stands still: caught up is having what
	// the leader had at the restart.
	waitUntil(t, 60*time.Second, fmt.Sprintf("follower %d reaches ledger size %d after its restart", down, target.LedgerSize), func() bool {
		h, _, err := c.node(down).clusterHealth()
		return err == nil && h.LedgerSize >= target.LedgerSize
	})
	caughtUp := time.Since(restartAt)
	sentAfter := 0
	for i := 1; i <= 3; i++ {
		sentAfter += c.logCount(i, "sent snapshot")
	}
	t.Logf("follower %d down 30 s under load (%d registrations, ledger size %d at its restart) caught up %v after its restart, with %d snapshots sent", down, behind, target.LedgerSize, caughtUp.Round(time.Millisecond), sentAfter-sentBefore)
	if sentAfter != sentBefore && snapshotEntries == 0 {
		t.Errorf("a follower down for 30 s was sent %d snapshots; it should catch up from the log", sentAfter-sentBefore)
	}
	ld.waitRound(t, 60*time.Second) // the load runs on against the caught-up follower
	ld.stop()
	elapsed := time.Since(start)
	c.waitSettled(60*time.Second, 1, 2, 3)

	acked := h.acked()
	checkRealTimeOrder(t, acked)
	checkEntries(t, c, acked, 1, 2, 3) // fails the test for any acknowledged statement lost
	checkSameTree(t, c, 1, 2, 3)
	lead, _ = c.leader()
	watch.check(t, lead) // fails the test for a fork

	// Unavailability: the longest stretch with no 201 answered, and the
	// total of the seconds in which none was.
	var answered []time.Time
	for _, a := range h.attempts() {
		if a.Status == http.StatusCreated {
			answered = append(answered, a.Answered)
		}
	}
	slices.SortFunc(answered, func(a, b time.Time) int { return a.Compare(b) })
	var longest time.Duration
	seconds := map[int64]bool{}
	for i, a := range answered {
		seconds[a.Unix()] = true
		if i > 0 && a.Sub(answered[i-1]) > longest {
			longest = a.Sub(answered[i-1])
		}
	}
	dark := int(elapsed.Seconds()) - len(seconds)
	snapshots, deltas, snapshotBytes := 0, 0, 0.0
	for i := 1; i <= 3; i++ {
		for _, rec := range c.logRecords(i, "sent snapshot") {
			snapshots++
			if from, _ := rec["ledger_from"].(float64); from > 0 {
				deltas++
			}
			b, _ := rec["bytes"].(float64)
			snapshotBytes += b
		}
	}
	t.Logf("chaos: %d rounds in %v (%v); %d acknowledged, 0 lost, 0 forks; %d registrations ended in an error (retryable answers the load gave up on); longest time without a 201: %v; seconds without one: %d of %d; snapshots sent: %d (%d deltas, %.1f MB in all)",
		rounds, elapsed.Round(time.Second), fmtKinds(kinds), len(acked), len(h.failed()), longest.Round(time.Millisecond), max(dark, 0), int(elapsed.Seconds()), snapshots, deltas, snapshotBytes/1e6)
}

func fmtKinds(k map[string]int) string {
	var parts []string
	for _, kind := range []string{"leader", "follower", "quorum"} {
		parts = append(parts, fmt.Sprintf("%d %s", k[kind], kind))
	}
	return strings.Join(parts, ", ")
}
