package store_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/store"

	"github.com/prometheus/client_golang/prometheus"
)

// The collector reports what Pebble did for the node's writes: a committed
// batch grows the WAL counter, and a flush and compaction (Settle) the
// flushed and compacted ones; the counters never go down.
func TestCollectorCountsStoreWork(t *testing.T) {
	s := openStore(t, t.TempDir())
	defer s.Close()
	c := s.Collector()
	read := func() map[string]float64 {
		t.Helper()
		out := map[string]float64{}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			out[f.GetName()] = f.GetMetric()[0].GetCounter().GetValue() + f.GetMetric()[0].GetGauge().GetValue()
		}
		return out
	}
	before := read()
	b := s.NewBatch()
	for i := int64(0); i < 2000; i++ {
		b.PutRecord(uint64(i), bytes.Repeat([]byte{byte(i)}, 1024))
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	afterWrite := read()
	if got := afterWrite["charter_store_wal_bytes_written_total"] - before["charter_store_wal_bytes_written_total"]; got < 2000*1024 {
		t.Fatalf("WAL grew by %v bytes for 2 MB of records", got)
	}
	if err := s.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	settled := read()
	// Records of 1 KiB are over blobMinimumSize: the flush wrote them to a
	// blob file.
	for _, name := range []string{"charter_store_flushed_bytes_total", "charter_store_compactions_total", "charter_store_flushes_total", "charter_store_disk_bytes", "charter_store_blob_bytes"} {
		if settled[name] <= before[name] {
			t.Errorf("%s did not grow with a flush and a compaction: %v then %v", name, before[name], settled[name])
		}
	}
	for name, v := range afterWrite {
		if strings.HasSuffix(name, "_total") && settled[name] < v {
			t.Errorf("counter %s went down: %v then %v", name, v, settled[name])
		}
	}
}

// A stall counts once however many begin events Pebble sends for it, and
// its time counts up to now while it lasts.
func TestStallClock(t *testing.T) {
	var c store.StallClockForTest
	t0 := time.Now()
	if n, d := c.Read(t0); n != 0 || d != 0 {
		t.Fatalf("fresh clock: %d stalls, %v", n, d)
	}
	c.Begin()
	c.Begin()
	if n, d := c.Read(time.Now().Add(time.Second)); n != 1 || d < time.Second {
		t.Fatalf("in a stall: %d stalls, %v; want 1 and at least 1s", n, d)
	}
	c.End()
	n, d := c.Read(time.Now().Add(time.Hour))
	if n != 1 || d >= time.Hour {
		t.Fatalf("after the stall: %d stalls, %v; the hour after it must not count", n, d)
	}
	c.End()
	if n2, d2 := c.Read(time.Now()); n2 != n || d2 != d {
		t.Fatalf("an end without a begin changed the clock: %d, %v then %d, %v", n, d, n2, d2)
	}
}
