package ledger_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkRegister measures the ledger alone — sequencing, raft with one
// fsync per Ready, apply to Pebble, Merkle tree, checkpoints — with 256
// concurrent registrations of 1 KiB statements, each waiting for the
// checkpoint that covers it (no HTTP, no signature checks). It is the
// "plain Merkle log" the signature check is compared with.
func BenchmarkRegister(b *testing.B) {
	n := startNode(b, b.TempDir())
	defer n.stop(b)
	body := make([]byte, 1024)
	var next atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < 256; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				id, err := n.l.Register(ctx, entryFor(int(i)+1<<20), body, [32]byte{})
				if err == nil {
					err = n.l.WaitCovered(ctx, id.Seqno)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "registrations/s")
}
