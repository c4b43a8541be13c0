package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/charterlog/charter/log"
	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/tlog"
)

// A store that installed a state image (see the snapshot doc comment)
// holds the ledger's state and its recent history, but not the
// transactions below the image's floor: its history is incomplete. The gap
// is recorded in keyHistory as be64(next) be64(floor): the transactions
// 1..next are held (they were there before, or backfilled and verified),
// next+1..floor are missing (some may linger from an earlier state, always
// the committed ones, since a committed prefix is the same on every node),
// everything after floor is held. The key is absent when history is
// complete.
//
// Backfill fills the gap from a peer (HistoryRange on the peer, Backfill
// here) in ranges that are complete subtrees of the Merkle tree of size
// floor, in ascending order. Each range is verified before it is written:
// its records recompute its subtree's hash, and that hash with the peer's
// sibling hashes (a Merkle path) recomputes the root of a complete subtree
// of floor's tree, a hash this store holds from the image, and whose
// whole tree root was checked against the newest signed checkpoint when
// the image was installed (ledger.Restore). A range that does not verify
// writes nothing.
var keyHistory = []byte{famMeta, 'g'}

// HistoryGap is what a store with incomplete history is missing: the
// transactions Next+1 to Floor.
type HistoryGap struct {
	Next, Floor uint64
}

// ErrHistoryIncomplete is returned by reads of transactions, stored
// hashes or checkpoint index items in the gap of a store whose history is
// incomplete: the node has the state but not yet that history, and will
// once backfill reaches it (retry, or ask another node).
var ErrHistoryIncomplete = errors.New("store: this node's ledger history is incomplete (it installed a state snapshot and is fetching the older transactions from its peers)")

// ErrBackfillRange is a backfill range that is not one this store (or the
// peer asked for it) can take or serve: misaligned, too large, beyond the
// floor or the ledger, or no longer the next one wanted.
var ErrBackfillRange = errors.New("store: bad backfill range")

// ErrBackfillVerify is a backfill range whose records or proof do not
// recompute the hash this store holds: it is not the ledger's history.
var ErrBackfillVerify = errors.New("store: backfill range does not verify against the ledger's tree")

// MaxBackfillLevel bounds a backfill range to 2^12 transactions; the peer
// serves fewer (a smaller level) when their bytes exceed its bound.
const MaxBackfillLevel = 12

func encodeGap(g HistoryGap) []byte { return append(be64(g.Next), be64(g.Floor)...) }

func decodeGap(v []byte) (HistoryGap, error) {
	if len(v) != 16 {
		return HistoryGap{}, fmt.Errorf("store: history gap of %d bytes", len(v))
	}
	g := HistoryGap{Next: binary.BigEndian.Uint64(v[:8]), Floor: binary.BigEndian.Uint64(v[8:])}
	if g.Next >= g.Floor {
		return HistoryGap{}, fmt.Errorf("store: history gap %d..%d is empty", g.Next, g.Floor)
	}
	return g, nil
}

// readGap reads the gap from r; ok is false when history is complete.
func readGap(r pebble.Reader) (HistoryGap, bool, error) {
	v, c, err := r.Get(keyHistory)
	if errors.Is(err, pebble.ErrNotFound) {
		return HistoryGap{}, false, nil
	}
	if err != nil {
		return HistoryGap{}, false, err
	}
	defer c.Close()
	g, err := decodeGap(v)
	return g, err == nil, err
}

// loadHistory reads the gap into memory, at Open.
func (s *Store) loadHistory() error {
	g, ok, err := readGap(s.db)
	if err != nil {
		return err
	}
	s.publishHistory(g, ok)
	return nil
}

// publishHistory makes the gap the one readers see, after the batch that
// wrote it committed, and wakes those waiting for a change.
func (s *Store) publishHistory(g HistoryGap, incomplete bool) {
	s.histMu.Lock()
	defer s.histMu.Unlock()
	if incomplete {
		s.gap.Store(&g)
	} else {
		s.gap.Store(nil)
	}
	if s.histChanged != nil {
		close(s.histChanged)
	}
	s.histChanged = make(chan struct{})
}

// History returns the gap, and false when history is complete.
func (s *Store) History() (HistoryGap, bool) {
	if g := s.gap.Load(); g != nil {
		return *g, true
	}
	return HistoryGap{}, false
}

// HistoryChanged is closed at the next change of the gap (an install, a
// backfilled range).
func (s *Store) HistoryChanged() <-chan struct{} {
	s.histMu.Lock()
	defer s.histMu.Unlock()
	if s.histChanged == nil {
		s.histChanged = make(chan struct{})
	}
	return s.histChanged
}

// gapErr turns a missing transaction into ErrHistoryIncomplete if it lay
// in the gap g, read before the read that missed it: the gap only
// shrinks between installs, so a transaction missing then and in g then
// was not held yet (reading the gap after the miss could find a range
// backfilled meanwhile, and answer NotFound for a transaction that
// exists).
func gapErr(g *HistoryGap, seqno uint64, err error) error {
	if g != nil && seqno > g.Next && seqno <= g.Floor {
		return fmt.Errorf("%w: transaction %d is not held yet (missing %d to %d)", ErrHistoryIncomplete, seqno, g.Next+1, g.Floor)
	}
	return err
}

// frontier lists the complete subtrees whose roots make the tree of n
// leaves, largest first: (level, index) pairs, as tlog.TreeHash reads them.
func frontier(n uint64) [][2]int64 {
	var out [][2]int64
	var start uint64
	for l := 63; l >= 0; l-- {
		if n>>uint(l)&1 == 1 {
			out = append(out, [2]int64{int64(l), int64(start >> uint(l))})
			start += 1 << uint(l)
		}
	}
	return out
}

// BackfillLevel returns the level of the backfill range that starts at
// leaf from, for a gap below floor: at most max, aligned (from is a
// multiple of 2^level), and within one complete subtree of floor's tree,
// whose level and index it also returns. ok is false when from is not
// below floor.
func BackfillLevel(floor, from uint64, max int) (level, top int, topIndex uint64, ok bool) {
	for _, st := range frontier(floor) {
		l, index := int(st[0]), uint64(st[1])
		if start := index << uint(l); from < start+1<<uint(l) {
			return min(max, l, bits.TrailingZeros64(from)), l, index, true
		}
	}
	return 0, 0, 0, false
}

// HistoryRange is what this store serves a peer backfilling the gap below
// floor: the transactions from+1 .. from+2^level (raw records) and the
// Merkle path from their subtree to the complete subtree of floor's tree
// that holds it (the sibling hashes, lowest first). When the records'
// bytes exceed maxBytes, a smaller level is served (its first 2^l
// records, at least one); the level served is returned.
func (s *Store) HistoryRange(floor, from uint64, level, maxBytes int) (int, []tlog.Hash, [][]byte, error) {
	if level < 0 || level > MaxBackfillLevel {
		return 0, nil, nil, fmt.Errorf("%w: level %d (at most %d)", ErrBackfillRange, level, MaxBackfillLevel)
	}
	want, top, _, ok := BackfillLevel(floor, from, level)
	if !ok || want != level {
		return 0, nil, nil, fmt.Errorf("%w: %d transactions from %d is not a complete subtree of the tree of size %d", ErrBackfillRange, 1<<level, from, floor)
	}
	size, err := ledgerBaseSize(s.db)
	if err != nil {
		return 0, nil, nil, err
	}
	if floor > size {
		return 0, nil, nil, fmt.Errorf("%w: floor %d is beyond this node's ledger (%d)", ErrBackfillRange, floor, size)
	}
	n := uint64(1) << uint(level)
	var recs [][]byte
	total := 0
	err = s.ScanRecords(from+1, from+n, func(_ uint64, raw []byte) error {
		if len(recs) > 0 && total+len(raw) > maxBytes {
			return errStopScan
		}
		total += len(raw)
		recs = append(recs, append([]byte(nil), raw...))
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return 0, nil, nil, err
	}
	// The largest complete subtree that fits: its first 2^l records.
	level = bits.Len(uint(len(recs))) - 1
	recs = recs[:1<<uint(level)]
	var idx []int64
	for l := level; l < top; l++ {
		idx = append(idx, tlog.StoredHashIndex(l, int64(from>>uint(l))^1))
	}
	proof, err := s.ReadHashes(idx)
	if err != nil {
		return 0, nil, nil, err
	}
	return level, proof, recs, nil
}

var errStopScan = errors.New("stop")

// Backfill verifies a range a peer served for the gap (HistoryRange's
// answer to floor, from, level) and writes it: its records, the stored
// hashes they make, their index items, and the gap's new start, in one
// batch. entryOf recomputes a record's leaf entry from its body (the
// statement's, for a registration), so that a record whose body was
// altered does not verify either.
//
// Crash reasoning: the batch is atomic and synced, so after a crash the
// gap's start names exactly the ranges written. A range is verified
// against hashes that do not change while the gap is open, and writeMu
// orders it with a snapshot install that replaces the gap.
func (s *Store) Backfill(floor, from uint64, level int, proof []tlog.Hash, recs [][]byte, entryOf func(*log.Record) ([32]byte, error)) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	g, ok := s.History()
	if !ok || g.Floor != floor || g.Next != from {
		return fmt.Errorf("%w: %d from %d below %d is not the next range wanted (%+v, incomplete %v)", ErrBackfillRange, len(recs), from, floor, g, ok)
	}
	want, top, topIndex, _ := BackfillLevel(floor, from, MaxBackfillLevel)
	n := uint64(1) << uint(level)
	if level < 0 || level > want || uint64(len(recs)) != n || len(proof) != top-level {
		return fmt.Errorf("%w: %d records and %d hashes for level %d from %d", ErrBackfillVerify, len(recs), len(proof), level, from)
	}
	// The range's leaves appended to the tree of size from as the ledger
	// appends them (log.Tree over this store's hashes), keeping the stored
	// hashes they make.
	made := map[int64]tlog.Hash{}
	tree := log.NewTree(int64(from), s)
	keep := func(i int64, h tlog.Hash) { made[i] = h }
	b := s.NewBatch()
	defer b.Close()
	for i, raw := range recs {
		seqno := from + uint64(i) + 1
		rec, err := log.UnmarshalRecord(raw)
		if err != nil {
			return fmt.Errorf("%w: transaction %d: %v", ErrBackfillVerify, seqno, err)
		}
		if rec.Seqno != seqno {
			return fmt.Errorf("%w: transaction %d where %d belongs", ErrBackfillVerify, rec.Seqno, seqno)
		}
		e, err := entryOf(rec)
		if err != nil || e != rec.Entry {
			return fmt.Errorf("%w: transaction %d: its leaf entry is not its body's (%v)", ErrBackfillVerify, seqno, err)
		}
		if _, err := tree.Append(rec.Entry, keep); err != nil {
			return fmt.Errorf("store: backfill: hashes of %d: %w", seqno, err)
		}
		b.PutRecord(seqno, raw)
		switch rec.Type {
		case log.TxRegistration:
			b.PutEntry(rec.Entry, rec.View, rec.Seqno)
		case log.TxCheckpoint:
			cp, err := log.UnmarshalCheckpoint(rec.Body)
			if err != nil {
				return fmt.Errorf("%w: checkpoint %d: %v", ErrBackfillVerify, seqno, err)
			}
			b.PutCheckpoint(cp.TreeSize, seqno)
		}
	}
	h, ok := made[tlog.StoredHashIndex(level, int64(from>>uint(level)))]
	if !ok {
		return fmt.Errorf("store: backfill: no subtree hash at level %d from %d", level, from)
	}
	j := from >> uint(level)
	for _, sib := range proof {
		if j&1 == 0 {
			h = tlog.NodeHash(h, sib)
		} else {
			h = tlog.NodeHash(sib, h)
		}
		j >>= 1
	}
	held, err := s.ReadHashes([]int64{tlog.StoredHashIndex(top, int64(topIndex))})
	if err != nil {
		return fmt.Errorf("store: backfill: the held subtree hash: %w", err)
	}
	if held[0] != h {
		return fmt.Errorf("%w: %d transactions from %d", ErrBackfillVerify, n, from)
	}
	for x, h := range made {
		b.PutHash(x, h)
	}
	next := HistoryGap{Next: from + n, Floor: floor}
	done := next.Next == floor
	if done {
		b.Delete(keyHistory)
	} else {
		b.Set(keyHistory, encodeGap(next))
	}
	// Synced: a range is up to 4096 transactions fetched and verified, and
	// Pebble keeps an unsynced batch in its own buffer for a moment, so a
	// kill -9 right after an unsynced commit could lose the range (and a
	// power loss the pages) and fetch it again. One fsync per range costs
	// little beside the fetch.
	if err := b.Commit(true); err != nil {
		return err
	}
	s.publishHistory(next, !done)
	return nil
}

// newestCheckpointSize is the largest tree size a checkpoint in r signs,
// 0 for none.
func newestCheckpointSize(r pebble.Reader) (uint64, error) { return lastNumberUnder(r, prefixCheckpt) }
