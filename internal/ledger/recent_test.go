package ledger

import (
	"bytes"
	"fmt"
	"testing"
)

func rec(seqno uint64) []byte { return []byte(fmt.Sprintf("record %04d", seqno)) } // 11 bytes

func TestRecentRecordsBoundAndGaps(t *testing.T) {
	r := &recentRecords{limit: 5 * 11}
	r.add(1, [][]byte{rec(1), rec(2), rec(3)})
	r.add(4, [][]byte{rec(4), rec(5), rec(6), rec(7)})
	// Bounded to five records: 3..7 held.
	if first, ok := r.start(); !ok || first != 3 {
		t.Fatalf("start %d, %v; want 3", first, ok)
	}
	if _, got := r.span(2, 7); got != nil {
		t.Fatal("span from a dropped seqno returned records")
	}
	first, got := r.span(4, 100)
	if first != 4 || len(got) != 4 {
		t.Fatalf("span(4, 100) = %d, %d records", first, len(got))
	}
	for i, g := range got {
		if !bytes.Equal(g, rec(4+uint64(i))) {
			t.Fatalf("record %d is %q", 4+i, g)
		}
	}
	if _, got := r.span(8, 9); got != nil {
		t.Fatal("span beyond the newest returned records")
	}
	// A batch that does not follow (the store was replaced) starts afresh.
	r.add(20, [][]byte{rec(20)})
	if first, _ := r.start(); first != 20 {
		t.Fatalf("after a gap the ring starts at %d", first)
	}
	if _, got := r.span(5, 5); got != nil {
		t.Fatal("a record from before the gap is still held")
	}
	r.reset()
	if _, ok := r.start(); ok {
		t.Fatal("reset kept records")
	}
	// The newest record is held even when it alone exceeds the bound.
	r.add(1, [][]byte{bytes.Repeat([]byte{1}, 100)})
	if _, got := r.span(1, 1); len(got) != 1 {
		t.Fatal("an oversized newest record is not held")
	}
}
