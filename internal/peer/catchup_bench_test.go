package peer

import (
	"testing"
	"time"
)

// BenchmarkCatchUp measures how long a follower that missed `behind`
// entries (about 220 B each) of a ledger of `ledger` entries takes to
// catch up after a restart: from the leader's log (the default retention),
// and through a snapshot (forced by SnapshotEntries, as every restart was
// before the leader kept the log for followers that are down), relative
// to the ledger the follower holds or (whole) as before deltas. A whole
// snapshot costs the whole ledger; the log and a delta only what was
// missed. Setup is not timed. Run with -benchtime=1x.
func BenchmarkCatchUp(b *testing.B) {
	for _, c := range []struct {
		name            string
		ledger, behind  int
		snapshotEntries uint64
		whole           bool
	}{
		{"missed=100k/log", 100_000, 100_000, 0, false},
		{"missed=100k/snapshot", 100_000, 100_000, 1000, false},
		{"ledger=100k/missed=5k/log", 100_000, 5_000, 0, false},
		{"ledger=100k/missed=5k/snapshot", 100_000, 5_000, 1000, false},
		{"ledger=100k/missed=5k/snapshot-whole", 100_000, 5_000, 1000, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				cfg := fastTicks
				cfg.SnapshotEntries = c.snapshotEntries
				tn := newTestNet(b, 3, cfg)
				tn.wholeSnapshots.Store(c.whole)
				lead := tn.leader()
				down := tn.follower(lead)
				if k := c.ledger - c.behind; k > 0 {
					tn.waitApplied(5*time.Minute, tn.propose(k, 200))
				}
				tn.stop(down)
				start := time.Now()
				behind := c.behind
				last := tn.propose(behind, 200)
				tn.waitApplied(5*time.Minute, last)
				b.Logf("%d entries written in %v", behind, time.Since(start))
				// Snapshots during setup (a live follower lagging past a
				// small SnapshotEntries) are not counted.
				tn.ev.mu.Lock()
				sent0, bytes0 := tn.ev.n["sent snapshot"], tn.ev.snapshotBytes
				tn.ev.mu.Unlock()
				b.StartTimer()
				start = time.Now()
				tn.start(down, false)
				tn.waitApplied(5*time.Minute, last)
				took := time.Since(start)
				b.StopTimer()
				tn.ev.mu.Lock()
				sent, bytes := tn.ev.n["sent snapshot"]-sent0, tn.ev.snapshotBytes-bytes0
				tn.ev.mu.Unlock()
				b.ReportMetric(float64(sent), "snapshots")
				b.ReportMetric(float64(bytes), "snapshot-bytes")
				b.Logf("caught up %d entries in %v with %d snapshots (%d bytes)", behind, took, sent, bytes)
				for id := range tn.nodes {
					tn.stop(id)
				}
			}
		})
	}
}
