package store

import "time"

// StallClockForTest exposes the write-stall accounting to store_test.
type StallClockForTest struct{ c stallClock }

func (s *StallClockForTest) Begin() { s.c.begin() }
func (s *StallClockForTest) End()   { s.c.end() }
func (s *StallClockForTest) Read(now time.Time) (uint64, time.Duration) {
	return s.c.read(now)
}
