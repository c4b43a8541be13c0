package store

import "time"

// StallClockForTest exposes the write-stall accounting to store_test.
type StallClockForTest struct{ c stallClock }

func (s *StallClockForTest) Begin() { s.c.begin() }
func (s *StallClockForTest) End()   { s.c.end() }
func (s *StallClockForTest) Read(now time.Time) (uint64, time.Duration) {
	return s.c.read(now)
}

// TailForTest is the index range of the entries l keeps in memory
// (first, last), or 0, 0 when it keeps none, and their payload bytes.
func (l *RaftLog) TailForTest() (first, last, bytes uint64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.tail) == 0 {
		return 0, 0, l.tailBytes
	}
	return l.tail[0].GetIndex(), l.tail[len(l.tail)-1].GetIndex(), l.tailBytes
}

// SetTailMaxBytesForTest lowers the bound on RaftLog's tail until the test
// ends.
func SetTailMaxBytesForTest(t interface{ Cleanup(func()) }, n uint64) {
	old := tailMaxBytes
	tailMaxBytes = n
	t.Cleanup(func() { tailMaxBytes = old })
}

// KeptForTest reports whether r holds a batch for its next Begin.
func (r *BatchReuser) KeptForTest() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.kept != nil
}
