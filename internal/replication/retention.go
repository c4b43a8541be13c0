package replication

import "time"

// retention accounts for the raft log a node holds, by age and size, so
// that compaction can keep entries a lagging follower still needs without
// letting the log grow past the operator's bounds.
//
// It is a list of segments, oldest first: consecutive entries persisted
// close together in time, with their total payload bytes and the time the
// last of them was persisted. It is owned by the Ready loop (no locking);
// it holds at most one segment per segmentSpan or per segmentBytes of log.
//
// The accounting lives in memory. At start the log already on disk is one
// segment persisted "now", with the size Pebble estimates for it: a node
// that restarts keeps its old log for at most one more retention period.
type retention struct {
	segs []segment
	// base is the index before the first segment's first entry.
	base uint64
	// total is the sum of the segments' bytes.
	total uint64
}

type segment struct {
	last  uint64    // index of the segment's last entry
	bytes uint64    // payload bytes of its entries
	at    time.Time // when its last entry was persisted
}

const (
	segmentSpan  = 100 * time.Millisecond
	segmentBytes = 256 << 10
)

// reset makes the accounting hold entries (first-1, last] as one segment of
// size bytes persisted at now.
func (r *retention) reset(first, last, bytes uint64, now time.Time) {
	r.base = first - 1
	r.segs = r.segs[:0]
	r.total = 0
	if last >= first {
		r.total = bytes
		r.segs = append(r.segs, segment{last: last, bytes: bytes, at: now})
	}
}

// appended records entries [lo, hi] of the given payload size, persisted at
// now. Entries at lo and above that were already recorded were replaced (a
// new leader overwrote an uncommitted suffix): their segments are cut at
// lo-1, keeping their byte counts (an overestimate, which only compacts a
// little earlier).
func (r *retention) appended(lo, hi, bytes uint64, now time.Time) {
	if hi < lo {
		return
	}
	for len(r.segs) > 0 && r.segs[len(r.segs)-1].last >= lo {
		s := &r.segs[len(r.segs)-1]
		prev := r.base
		if len(r.segs) > 1 {
			prev = r.segs[len(r.segs)-2].last
		}
		if prev >= lo-1 {
			// The whole segment was replaced.
			r.total -= s.bytes
			r.segs = r.segs[:len(r.segs)-1]
			continue
		}
		s.last = lo - 1
		break
	}
	if len(r.segs) == 0 && r.base >= lo {
		r.base = lo - 1
	}
	r.total += bytes
	if n := len(r.segs); n > 0 {
		s := &r.segs[n-1]
		if s.last+1 == lo && now.Sub(s.at) < segmentSpan && s.bytes < segmentBytes {
			s.last, s.bytes, s.at = hi, s.bytes+bytes, now
			return
		}
	}
	r.segs = append(r.segs, segment{last: hi, bytes: bytes, at: now})
}

// compacted drops what the log no longer holds: entries up to index.
func (r *retention) compacted(index uint64) {
	if index <= r.base {
		return
	}
	i := 0
	for i < len(r.segs) && r.segs[i].last <= index {
		r.total -= r.segs[i].bytes
		i++
	}
	// A segment cut by the compaction keeps its byte count (an
	// overestimate, as above).
	r.segs = append(r.segs[:0], r.segs[i:]...)
	r.base = index
}

// beyond returns the highest index such that the entries up to it are
// beyond the bounds: older than maxAge at now, or outside the newest
// maxBytes of log. A bound of zero is no bound. Entries after the returned
// index are within both bounds (up to one segment's granularity: the
// segment that crosses the byte bound is dropped whole, so the log kept is
// never larger than maxBytes).
func (r *retention) beyond(now time.Time, maxBytes uint64, maxAge time.Duration) uint64 {
	out := r.base
	if maxAge > 0 {
		for _, s := range r.segs {
			if now.Sub(s.at) <= maxAge {
				break
			}
			out = max(out, s.last)
		}
	}
	if maxBytes > 0 {
		var sum uint64
		for i := len(r.segs) - 1; i >= 0; i-- {
			sum += r.segs[i].bytes
			if sum > maxBytes {
				out = max(out, r.segs[i].last)
				break
			}
		}
	}
	return out
}

// bytesThrough is the payload size of the entries up to index, counted in
// whole segments: a segment that index cuts counts in full, so the figure
// may run a segment high.
func (r *retention) bytesThrough(index uint64) uint64 {
	var sum uint64
	prev := r.base
	for _, s := range r.segs {
		if prev >= index {
			break
		}
		sum += s.bytes
		prev = s.last
	}
	return sum
}

// bytes is the payload size of the log accounted for.
func (r *retention) bytes() uint64 { return r.total }
