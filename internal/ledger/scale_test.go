package ledger_test

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/ledgertest"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
)

// scaleStatementBytes is the size of the statements the scale benchmark
// fills the ledger with and registers: 1 KiB, random (a signed statement
// does not compress), as make bench's.
const scaleStatementBytes = 1024

// BenchmarkRegisterAtScale measures what a registration costs the ledger
// once it already holds CHARTER_SCALE_ENTRIES transactions (0 when
// unset): the ledger is filled through Import (records, tree hashes,
// index, as apply writes them, without raft or HTTP), then registrations
// go through the node's real path — sequencer, raft with its fsyncs, apply
// to Pebble, the Merkle tree, checkpoints — each waiting for the
// checkpoint that covers it and then building its inclusion proof, as a
// receipt does. It reports the process CPU per registration (user +
// system, all goroutines, Pebble's compactions included), which a loaded
// machine does not inflate as it does wall time, and registrations/s.
// What it leaves out (HTTP, TLS, parsing, the signature) does not depend
// on the ledger's size. make bench-scale runs it at 0, 10^6 and 10^7.
//
// CHARTER_SCALE_DIR, when set, keeps the filled store there and reuses it
// on the next run at the same size (filling 10^7 takes minutes).
func BenchmarkRegisterAtScale(b *testing.B) {
	size := uint64(0)
	if s := os.Getenv("CHARTER_SCALE_ENTRIES"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			b.Fatalf("CHARTER_SCALE_ENTRIES=%q: %v", s, err)
		}
		size = v
	}
	dir := b.TempDir()
	if keep := os.Getenv("CHARTER_SCALE_DIR"); keep != "" {
		dir = fmt.Sprintf("%s/ledger-%d", keep, size)
	}
	fillForScale(b, dir, size)
	b.ResetTimer()
	b.StopTimer()

	n := ledgertest.Start(b, dir, ledger.Config{})
	defer n.Stop(b)
	// The entry filter is built once at start from the whole index (a
	// start-up cost that grows with the ledger, reported apart); the
	// registrations are measured after it.
	built := time.Now()
	for !n.Ledger.EntryFilterBuilt() {
		time.Sleep(10 * time.Millisecond)
	}
	b.ReportMetric(time.Since(built).Seconds(), "filter-build-s")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bodies := randomBodies(b.N, n.Ledger.State().Size)
	var next atomic.Int64
	cpu0 := processCPU(b)
	start := time.Now()
	b.StartTimer()
	var wg sync.WaitGroup
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N {
					return
				}
				id, err := n.Ledger.Register(ctx, sha256.Sum256(bodies[i]), bodies[i], [32]byte{})
				if err == nil {
					err = n.Ledger.WaitCovered(ctx, id.Seqno)
				}
				if err == nil {
					_, err = n.Ledger.Proof(id.Seqno)
				}
				if err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	took, cpu := time.Since(start), processCPU(b)-cpu0
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/registration")
	b.ReportMetric(float64(b.N)/took.Seconds(), "registrations/s")
	b.ReportMetric(float64(n.Ledger.State().Size), "ledger-size")
}

// fillForScale makes dir a store holding size registrations of random
// 1 KiB statements, unless it already does.
func fillForScale(b *testing.B, dir string, size uint64) {
	st, err := store.Open(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	l, err := ledger.Open(st, ledger.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	have := l.State().Size
	if have >= size {
		return
	}
	start := time.Now()
	const chunk = 4096
	rng := rand.NewChaCha8([32]byte{1})
	body := make([]byte, scaleStatementBytes)
	for seqno := have + 1; seqno <= size; {
		raws := make([][]byte, 0, chunk)
		for ; seqno <= size && len(raws) < chunk; seqno++ {
			_, _ = rng.Read(body)
			binary.BigEndian.PutUint64(body, seqno) // unique
			rec := &log.Record{Type: log.TxRegistration, View: 1, Seqno: seqno, Entry: sha256.Sum256(body), Body: body}
			raw, err := log.MarshalRecord(rec)
			if err != nil {
				b.Fatal(err)
			}
			raws = append(raws, raw)
		}
		if err := l.Import(raws, seqno > size); err != nil {
			b.Fatal(err)
		}
	}
	// What the import left for compactions to do is the fill's cost, not
	// the measured registrations'.
	if err := st.Settle(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d registrations in %v", size-have, time.Since(start).Round(time.Second))
}

// randomBodies returns n distinct random statements that no filled
// ledger holds; seeded by the ledger's size, so that a run on a kept store
// registers new statements, not duplicates of the last run's.
func randomBodies(n int, size uint64) [][]byte {
	seed := [32]byte{2}
	binary.BigEndian.PutUint64(seed[8:], size)
	rng := rand.NewChaCha8(seed)
	out := make([][]byte, n)
	for i := range out {
		out[i] = make([]byte, scaleStatementBytes)
		_, _ = rng.Read(out[i])
	}
	return out
}

// processCPU is the CPU time (user and system) the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
