package ledger

import "testing"

func TestCoveringIndex(t *testing.T) {
	var c coveringIndex
	c.reset(10)
	if _, _, ok := c.find(11); ok {
		t.Fatal("an empty index answered")
	}
	// Checkpoints at tree sizes 20, 30, …; checkpoint k at seqno 1000+k.
	for k := uint64(2); k < 2+coveringIndexSize+5; k++ {
		c.add(10*k, 1000+k)
	}
	for size := uint64(1); size <= 10*(coveringIndexSize+7); size++ {
		ts, seq, ok := c.find(size)
		if !ok {
			continue
		}
		want := (size + 9) / 10 * 10
		if ts != want || seq != 1000+want/10 {
			t.Fatalf("find(%d) = %d @%d, want %d @%d", size, ts, seq, want, 1000+want/10)
		}
	}
	// The oldest half was dropped at the bound: sizes it covered are the
	// store's now, and so is anything beyond the newest checkpoint.
	if _, _, ok := c.find(15); ok {
		t.Fatal("a dropped checkpoint answered")
	}
	last := 10 * uint64(2+coveringIndexSize+4)
	if _, _, ok := c.find(last); !ok {
		t.Fatal("the newest checkpoint did not answer")
	}
	if _, _, ok := c.find(last + 1); ok {
		t.Fatal("a size beyond the newest checkpoint answered")
	}
	c.add(last, 1) // not newer: ignored
	if ts, _, _ := c.find(last); ts != last {
		t.Fatalf("find(%d) = %d after a stale add", last, ts)
	}
	c.reset(last)
	if _, _, ok := c.find(last); ok {
		t.Fatal("answered after reset")
	}
}
