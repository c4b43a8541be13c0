package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/fault"
	"github.com/charterlog/charter/internal/store"
)

// nodeHistory is GET /node/health's history.
type nodeHistory struct {
	Complete  bool   `json:"complete"`
	HeldTo    uint64 `json:"held_to"`
	MissingTo uint64 `json:"missing_to"`
}

func (m *member) history() (nodeHistory, error) {
	r, err := m.do(http.MethodGet, "/node/health", "", nil)
	if err != nil {
		return nodeHistory{}, err
	}
	var h struct {
		History *nodeHistory `json:"history"`
	}
	if err := json.Unmarshal(r.Body, &h); err != nil || h.History == nil {
		return nodeHistory{}, fmt.Errorf("/node/health %d without history: %s", r.Status, truncate(r.Body, 200))
	}
	return *h.History, nil
}

// A node that joins a network of thousands of registrations is sent a
// state image, not the whole ledger, and fetches the history below its
// floor afterwards. Killed (SIGKILL) when half of it is fetched, it keeps
// what it verified; restarted alone, it serves what it holds and answers
// 503 HistoryIncomplete for what it does not; with its peers back, it
// resumes where it was, and ends with the same ledger as the others,
// serving their receipts byte for byte.
func TestJoinStateImageBackfill(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{SnapshotEntries: 20, CheckpointInterval: 10 * time.Millisecond, LedgerChunkTransactions: 1000})
	h := &history{}
	// More than a follower may miss and still be sent a delta (4096).
	const size = 6000
	fill(t, c, h, size, 4, []int{1, 2, 3})
	failIfFailed(t, h)
	settled := c.waitSettled(30*time.Second, 1, 2, 3)
	t.Logf("%d registrations acknowledged; ledger of %d transactions", len(h.acked()), settled.LedgerSize)

	j := c.addJoiner(1)
	jcfg, err := config.Load(j.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	jcfg.LedgerChunkTransactions = 1000
	if err := config.Write(j.cfgPath, jcfg); err != nil {
		t.Fatal(err)
	}
	j.nextEnv = []string{fault.EnvCrashAt + "=" + fault.BackfillHalf}
	j.start()
	c.waitRoleWithin(60*time.Second, 4, "learner")
	// It backfills once trusted (the history is served to trusted nodes);
	// half way, it crashes.
	c.govAccept("transition_node_to_trusted", `{"node_id":"4"}`)
	select {
	case <-j.doneCh():
	case <-time.After(2 * time.Minute):
		t.Fatal("the joiner did not reach backfill-half within 2 minutes")
	}
	var ee *exec.ExitError
	if err := j.exitErr(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the joiner exited with %v, not by its crash point's SIGKILL:\n%s", err, tailFile(j.logPath, 40))
	}
	if !c.logContains(4, "installing snapshot") {
		t.Fatal("the joiner installed no snapshot")
	}
	var floor uint64
	for i := 1; i <= 3; i++ {
		for _, rec := range c.logRecords(i, "sending a state image without the history below its floor") {
			f, _ := rec["floor"].(float64)
			floor = uint64(f)
		}
	}
	if floor < size/2 {
		t.Fatalf("no node logged sending a state image with a floor near the ledger's size (floor %d)", floor)
	}
	for _, rec := range c.logRecords(1, "sent snapshot") {
		t.Logf("sent a snapshot of %v bytes to node %v", rec["bytes"], rec["peer"])
	}

	// What it verified is durable: the store says so, with the process gone.
	st, err := store.Open(filepath.Join(j.dataDir, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gap, incomplete := st.History()
	_, recErr := st.Record(2)
	st.Close()
	if !incomplete || gap.Floor != floor || gap.Next*2 < gap.Floor {
		t.Fatalf("after the crash the joiner's gap is %+v (incomplete %v); want at least half of %d held", gap, incomplete, floor)
	}
	// The kill came after the half: the first transactions are held.
	if recErr != nil {
		t.Fatalf("transaction 2, backfilled before the crash: %v", recErr)
	}
	t.Logf("killed with transactions 1 to %d of %d held", gap.Next, gap.Floor)

	// Alone, it serves what it holds and is honest about the rest.
	for i := 1; i <= 3; i++ {
		c.stop(i)
	}
	j.start()
	eventually(t, 30*time.Second, "the restarted joiner reports its history", func() error {
		hs, err := j.history()
		if err != nil {
			return err
		}
		if hs.Complete || hs.MissingTo != floor || hs.HeldTo < gap.Next {
			t.Fatalf("restarted joiner's history: %+v; want incomplete, held to at least %d, missing to %d", hs, gap.Next, floor)
		}
		return nil
	})
	var inGap, held, early *outcome
	for _, o := range h.acked() {
		if early == nil || o.LeafIndex < early.LeafIndex {
			early = o
		}
		if o.LeafIndex >= gap.Next && o.LeafIndex+1 < floor && inGap == nil {
			inGap = o
		}
		if o.LeafIndex > floor && held == nil {
			held = o
		}
	}
	if inGap == nil {
		t.Fatal("no acknowledged registration lies in the gap")
	}
	eventually(t, 30*time.Second, "the joiner answers a receipt in its gap with 503 HistoryIncomplete", func() error {
		r, err := j.do(http.MethodGet, "/entries/"+inGap.ID, "", nil)
		if err != nil {
			return err
		}
		p, _ := decodeProblem(r.Body)
		if r.Status != http.StatusServiceUnavailable || p.Title != "HistoryIncomplete" {
			return fmt.Errorf("%d %s", r.Status, describeProblem(r))
		}
		if r.Header.Get("Retry-After") == "" {
			t.Fatalf("503 HistoryIncomplete without Retry-After")
		}
		return nil
	})
	// The first registration was backfilled before the crash, and so was
	// the checkpoint that first covered it: its receipt is served.
	if got, err := fetchReceipt(j, early.ID, 15*time.Second); err != nil || string(got) != string(early.Receipt) {
		t.Fatalf("receipt of the first registration (leaf %d, backfilled), from the joiner alone: equal %v, %v", early.LeafIndex, string(got) == string(early.Receipt), err)
	}
	if held != nil {
		got, err := fetchReceipt(j, held.ID, 15*time.Second)
		if err != nil || string(got) != string(held.Receipt) {
			t.Fatalf("receipt after the floor, from the joiner alone: equal %v, %v", string(got) == string(held.Receipt), err)
		}
	}

	// With its peers back, it resumes where it was and completes.
	resumedAt := time.Now()
	for i := 1; i <= 3; i++ {
		c.node(i).start()
	}
	c.waitSettled(60*time.Second, 1, 2, 3, 4)
	eventually(t, 2*time.Minute, "the joiner's history is complete", func() error {
		hs, err := j.history()
		if err != nil {
			return err
		}
		if !hs.Complete {
			return fmt.Errorf("%+v", hs)
		}
		return nil
	})
	t.Logf("history complete %v after the peers came back", time.Since(resumedAt))
	resumed := false
	for _, rec := range c.logRecords(4, "backfill: fetching the history below the state image's floor") {
		if from, _ := rec["held_to"].(float64); uint64(from) >= gap.Next {
			resumed = true
		}
	}
	if !resumed {
		t.Errorf("the joiner did not resume from %d (its log has no fetch from there)", gap.Next)
	}
	checkEntries(t, c, h.acked(), 4, 1)
	checkSameTree(t, c, 1, 2, 3, 4)
	// Its ledger chunk files hold the whole ledger too, written in order
	// as the history arrived: complete chunks of 1000 from the first
	// transaction on, with no hole.
	eventually(t, 60*time.Second, "the joiner's complete ledger chunk files reach the ledger's size", func() error {
		r, err := j.do(http.MethodGet, "/node/ledger/chunks", "", nil)
		if err != nil {
			return err
		}
		var out struct {
			Chunks []struct {
				First uint64 `json:"first"`
				Last  uint64 `json:"last"`
			} `json:"chunks"`
		}
		if err := json.Unmarshal(r.Body, &out); err != nil {
			return fmt.Errorf("%d %s", r.Status, truncate(r.Body, 200))
		}
		next := uint64(1)
		for _, ch := range out.Chunks {
			if ch.First != next {
				t.Fatalf("the joiner's chunk files have a hole: a chunk %d-%d after %d", ch.First, ch.Last, next-1)
			}
			next = ch.Last + 1
		}
		if next+1000 < settled.LedgerSize {
			return fmt.Errorf("complete chunk files to %d of %d", next-1, settled.LedgerSize)
		}
		return nil
	})
}
