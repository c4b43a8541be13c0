package ledger

import "sync"

// maxRecentBytes bounds the encoded records recentRecords keeps. The
// chunk-file writer trails the applied ledger by at most a sync interval
// (200 ms, a few thousand records at full speed), so it reads from memory;
// a reader further behind (a node restarting with files far behind its
// store) reads the store.
const maxRecentBytes = 16 << 20

// recentRecords holds the encoded records of the newest applied
// transactions, contiguous by seqno, so that the ledger's followers (the
// chunk files) get them as they were applied rather than read back from
// the store a moment after they were written. The records are the same
// slices Apply put in its batch: immutable once committed, shared, not
// copied.
type recentRecords struct {
	// limit bounds the held bytes (maxRecentBytes when 0); the newest
	// record is held whatever its size.
	limit int
	mu    sync.Mutex
	first uint64   // seqno of recs[0]
	recs  [][]byte // recs[i] is the record at seqno first+i
	bytes int
}

// add appends the records of seqnos first, first+1, ... as one applied
// batch publishes them. A batch that does not follow the held ones (the
// store was replaced under the ledger) starts the ring afresh.
func (r *recentRecords) add(first uint64, recs [][]byte) {
	if len(recs) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.recs) == 0 || r.first+uint64(len(r.recs)) != first {
		r.first, r.recs, r.bytes = first, nil, 0
	}
	for _, rec := range recs {
		r.recs = append(r.recs, rec)
		r.bytes += len(rec)
	}
	limit := r.limit
	if limit == 0 {
		limit = maxRecentBytes
	}
	drop := 0
	for r.bytes > limit && drop < len(r.recs)-1 {
		r.bytes -= len(r.recs[drop])
		drop++
	}
	if drop > 0 {
		// Copy down rather than reslice, so the dropped records are
		// not kept alive by the backing array.
		n := copy(r.recs, r.recs[drop:])
		clear(r.recs[n:])
		r.recs = r.recs[:n]
		r.first += uint64(drop)
	}
}

// reset forgets every held record (the store was replaced).
func (r *recentRecords) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.first, r.recs, r.bytes = 0, nil, 0
}

// start returns the seqno of the first held record, and whether any is
// held.
func (r *recentRecords) start() (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.first, len(r.recs) > 0
}

// span returns the held records from seqno from to to (inclusive) and the
// seqno of the first one returned; it returns none when from is not held.
// The slice is a copy of the headers, safe to use without the lock.
func (r *recentRecords) span(from, to uint64) (uint64, [][]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.recs) == 0 || from < r.first || from >= r.first+uint64(len(r.recs)) {
		return 0, nil
	}
	end := min(to, r.first+uint64(len(r.recs))-1)
	out := make([][]byte, end-from+1)
	copy(out, r.recs[from-r.first:end-r.first+1])
	return from, out
}

// ScanRecords calls fn with the encoded record of each seqno from from to
// to (inclusive, all applied), in order: from memory when the newest
// records are asked for, from the store otherwise. raw is valid only
// during the call (the store's iterator reuses it); fn copies what it
// keeps.
func (l *Ledger) ScanRecords(from, to uint64, fn func(seqno uint64, raw []byte) error) error {
	for from <= to {
		first, recs := l.recent.span(from, to)
		if recs == nil {
			// Not held: from the store, up to where the held ones start.
			end := to
			if ringFirst, held := l.recent.start(); held && ringFirst > from && ringFirst <= to {
				end = ringFirst - 1
			}
			if err := l.st.ScanRecords(from, end, fn); err != nil {
				return err
			}
			from = end + 1
			continue
		}
		for i, rec := range recs {
			if err := fn(first+uint64(i), rec); err != nil {
				return err
			}
		}
		from = first + uint64(len(recs))
	}
	return nil
}
