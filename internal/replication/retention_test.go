package replication

import (
	"testing"
	"time"
)

func TestRetentionBounds(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var r retention
	r.reset(1, 0, 0, t0)
	// Ten segments of 100 entries and 1000 bytes, one second apart.
	for i := range uint64(10) {
		r.appended(i*100+1, i*100+100, 1000, t0.Add(time.Duration(i)*time.Second))
	}
	if r.bytes() != 10000 {
		t.Fatalf("bytes = %d", r.bytes())
	}
	now := t0.Add(9 * time.Second)
	for _, c := range []struct {
		maxBytes uint64
		maxAge   time.Duration
		want     uint64
	}{
		{0, 0, 0},
		{20000, time.Minute, 0},
		{10000, 0, 0},
		{9999, 0, 100},                    // the oldest segment crosses the bound: it goes whole
		{3000, 0, 700},                    // the newest three segments fit
		{0, 2500 * time.Millisecond, 700}, // persisted at t0+6s or before
		{3000, 5 * time.Second, 700},
		{8000, 2500 * time.Millisecond, 700},
		{8000, 5 * time.Second, 400},
	} {
		if got := r.beyond(now, c.maxBytes, c.maxAge); got != c.want {
			t.Errorf("beyond(%d bytes, %v) = %d, want %d", c.maxBytes, c.maxAge, got, c.want)
		}
	}
	for _, c := range []struct{ index, want uint64 }{
		{0, 0}, {1, 1000}, {100, 1000}, {101, 2000}, {1000, 10000}, {5000, 10000},
	} {
		if got := r.bytesThrough(c.index); got != c.want {
			t.Errorf("bytesThrough(%d) = %d, want %d (whole segments)", c.index, got, c.want)
		}
	}
	// A new leader replaces entries 651..: segments after 650 go, the one
	// holding 650 is cut.
	r.appended(651, 660, 50, now)
	if got := r.segs[len(r.segs)-2].last; got != 650 {
		t.Errorf("cut segment ends at %d, want 650", got)
	}
	if r.bytes() != 7000+50 {
		t.Errorf("bytes after the overwrite = %d, want 7050", r.bytes())
	}
	r.compacted(250)
	if r.base != 250 || r.segs[0].last != 300 || r.bytes() != 5050 {
		t.Errorf("after compacting to 250: base %d, first segment to %d, %d bytes", r.base, r.segs[0].last, r.bytes())
	}
	// Entries persisted within segmentSpan of each other share a segment.
	n := len(r.segs)
	r.appended(661, 661, 10, now.Add(time.Millisecond))
	if len(r.segs) != n {
		t.Errorf("an entry 1ms later started a new segment")
	}
}
