package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/mod/sumdb/tlog"
)

var (
	keyLedgerState  = []byte{famLedger, 'n'}
	prefixRecord    = []byte{famLedger, 't'}
	prefixHash      = []byte{famLedger, 'x'}
	prefixCheckpt   = []byte{famLedger, 'k'}
	prefixEntryHash = []byte{famLedger, 'd'}
)

func recordKey(seqno uint64) []byte { return appendNumbered(nil, prefixRecord, seqno) }
func hashKey(i int64) []byte        { return appendNumbered(nil, prefixHash, uint64(i)) }

// appendNumbered appends the key prefix‖be64(n) to dst.
func appendNumbered(dst, prefix []byte, n uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, prefix...), n)
}
func checkpointKey(size uint64) []byte { return appendNumbered(nil, prefixCheckpt, size) }
func entryHashKey(e [32]byte) []byte   { return append(append([]byte(nil), prefixEntryHash...), e[:]...) }

// PutRecord stores the encoded transaction record at seqno.
func (b *Batch) PutRecord(seqno uint64, rec []byte) { b.setNumbered(prefixRecord, seqno, rec) }

// PutHash stores Merkle stored hash i.
func (b *Batch) PutHash(i int64, h tlog.Hash) { b.setNumbered(prefixHash, uint64(i), h[:]) }

// setNumbered sets prefix‖be64(n) to value, writing the key and the value
// straight into the batch: an apply puts a record, about two hashes and an
// entry for every registration, and building each key in its own slice
// first was a third of the apply's allocations.
func (b *Batch) setNumbered(prefix []byte, n uint64, value []byte) {
	op := b.b.SetDeferred(len(prefix)+8, len(value))
	appendNumbered(op.Key[:0], prefix, n)
	copy(op.Value, value)
	_ = op.Finish()
}

// PutCheckpoint indexes the checkpoint transaction seqno by the tree size it signs.
func (b *Batch) PutCheckpoint(treeSize, seqno uint64) { b.Set(checkpointKey(treeSize), be64(seqno)) }

// PutEntry indexes a registration's transaction id by its leaf entry.
func (b *Batch) PutEntry(entry [32]byte, view, seqno uint64) {
	op := b.b.SetDeferred(len(prefixEntryHash)+len(entry), 16)
	copy(op.Key, prefixEntryHash)
	copy(op.Key[len(prefixEntryHash):], entry[:])
	appendEntryValue(op.Value[:0], seqno, view)
	_ = op.Finish()
}

func entryValue(seqno, view uint64) []byte { return appendEntryValue(nil, seqno, view) }

// appendEntryValue appends the entry index's value, be64(seqno)‖be64(view).
func appendEntryValue(dst []byte, seqno, view uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(dst, seqno), view)
}

// PutLedgerState stores the encoded ledger state.
func (b *Batch) PutLedgerState(v []byte) { b.Set(keyLedgerState, v) }

// LedgerState returns the encoded ledger state, or ErrNotFound for a new store.
func (s *Store) LedgerState() ([]byte, error) { return s.Get(keyLedgerState) }

// Record returns the encoded transaction record at seqno, or ErrNotFound.
func (s *Store) Record(seqno uint64) ([]byte, error) {
	g := s.gap.Load()
	v, err := s.Get(recordKey(seqno))
	if errors.Is(err, ErrNotFound) {
		return nil, gapErr(g, seqno, err)
	}
	if err != nil {
		return nil, err
	}
	return s.resolveRecord(s.db, seqno, v, nil)
}

// ScanRecords calls fn with each record from seqno from to to, in order,
// through one iterator; raw is valid only during the call. A seqno missing
// in the range is an error. Stubs are resolved (bodies.go): a run of them
// that the ledger files hold is read from the files in one pass.
func (s *Store) ScanRecords(from, to uint64, fn func(seqno uint64, raw []byte) error) error {
	g := s.gap.Load()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: recordKey(from), UpperBound: recordKey(to + 1)})
	if err != nil {
		return fmt.Errorf("store: iter: %w", err)
	}
	defer it.Close()
	files, synced := s.filesView()
	// run is the stubs to read from the files, from..to (empty when from >
	// to), and their values one after another in stubs, each record
	// checked against its own as it comes (stub.matches).
	var run struct {
		from, to uint64
		stubs    []byte
		ends     []int
	}
	run.from = 1
	flush := func() error {
		if run.from > run.to {
			return nil
		}
		if files == nil {
			return errNoFiles(run.from)
		}
		lo, hi := run.from, run.to
		run.from, run.to = 1, 0
		err := files.ReadRecords(lo, hi, func(seqno uint64, raw []byte) error {
			i := seqno - lo
			start := 0
			if i > 0 {
				start = run.ends[i-1]
			}
			st, err := parseStub(run.stubs[start:run.ends[i]])
			if err != nil {
				return err
			}
			if err := st.matches(seqno, raw); err != nil {
				return err
			}
			return fn(seqno, raw)
		})
		run.stubs, run.ends = run.stubs[:0], run.ends[:0]
		if err != nil {
			return fmt.Errorf("store: records %d to %d from the ledger files: %w", lo, hi, err)
		}
		return nil
	}
	var last lastEntry
	next := from
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != len(prefixRecord)+8 || binary.BigEndian.Uint64(k[len(prefixRecord):]) != next {
			return gapErr(g, next, fmt.Errorf("store: record %d missing", next))
		}
		v := it.Value()
		if isStub(v) && next <= synced {
			if run.from > run.to {
				run.from = next
			}
			run.to = next
			run.stubs = append(run.stubs, v...)
			run.ends = append(run.ends, len(run.stubs))
			next++
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		if v, err = s.resolveRecord(s.db, next, v, &last); err != nil {
			return err
		}
		if err := fn(next, v); err != nil {
			return err
		}
		next++
	}
	if err := flush(); err != nil {
		return err
	}
	if err := it.Error(); err != nil {
		return err
	}
	if next != to+1 {
		return gapErr(g, next, fmt.Errorf("store: record %d missing", next))
	}
	return nil
}

// Entry returns the transaction id (view, seqno) of the registration with
// this leaf entry, or ErrNotFound.
func (s *Store) Entry(entry [32]byte) (view, seqno uint64, err error) {
	v, err := s.Get(entryHashKey(entry))
	if err != nil {
		return 0, 0, err
	}
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("store: entry index value of %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v[8:]), binary.BigEndian.Uint64(v[:8]), nil
}

// ScanEntries calls fn with the leaf entry of every registration in the
// store, as of one consistent snapshot taken when it starts. It stops with
// ctx's error when ctx ends.
func (s *Store) ScanEntries(ctx context.Context, fn func(entry [32]byte)) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefixEntryHash, UpperBound: prefixEnd(prefixEntryHash)})
	if err != nil {
		return fmt.Errorf("store: iter: %w", err)
	}
	defer it.Close()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		if n++; n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		k := it.Key()
		if len(k) != len(prefixEntryHash)+32 {
			return fmt.Errorf("store: entry index key of %d bytes", len(k))
		}
		fn([32]byte(k[len(prefixEntryHash):]))
	}
	return it.Error()
}

// CheckpointCovering returns the tree size and seqno of the first checkpoint
// whose tree size is at least size, or ErrNotFound.
//
// With history incomplete, the index lacks the checkpoints recorded in the
// gap, and the first one covering a size below the floor may be among
// them: the answer is ErrHistoryIncomplete, unless the checkpoint found is
// recorded at or before the gap's start. Checkpoints sign growing trees,
// so every missing one (recorded after it) signs a tree at least as large:
// the one found is the first.
func (s *Store) CheckpointCovering(size uint64) (treeSize, seqno uint64, err error) {
	g := s.gap.Load()
	k, v, err := s.SeekGE(prefixCheckpt, checkpointKey(size))
	if err == nil {
		treeSize, seqno = binary.BigEndian.Uint64(k[len(prefixCheckpt):]), binary.BigEndian.Uint64(v)
	}
	if g != nil && size < g.Floor && (err != nil || seqno > g.Next) {
		return 0, 0, fmt.Errorf("%w: the checkpoint covering tree size %d may be below %d", ErrHistoryIncomplete, size, g.Floor)
	}
	return treeSize, seqno, err
}

// CheckpointAt returns the seqno of the checkpoint of exactly treeSize.
func (s *Store) CheckpointAt(treeSize uint64) (uint64, error) {
	g := s.gap.Load()
	v, err := s.Get(checkpointKey(treeSize))
	if errors.Is(err, ErrNotFound) && g != nil && treeSize < g.Floor {
		return 0, fmt.Errorf("%w: checkpoints below tree size %d", ErrHistoryIncomplete, g.Floor)
	}
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(v), nil
}

// ReadHashes implements tlog.HashReader over the durable stored hashes, with
// one iterator for the whole request.
// With history incomplete, a missing hash is one of the gap's:
// ErrHistoryIncomplete.
func (s *Store) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	g := s.gap.Load()
	hs, err := hashReader{s.db}.ReadHashes(indexes)
	if g != nil && errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("%w: %v", ErrHistoryIncomplete, err)
	}
	return hs, err
}

// hashReader reads stored hashes from a database or one of its snapshots.
type hashReader struct{ r pebble.Reader }

func (h hashReader) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	if len(indexes) == 0 {
		return out, nil
	}
	it, err := h.r.NewIter(&pebble.IterOptions{LowerBound: prefixHash, UpperBound: prefixEnd(prefixHash)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	for i, x := range indexes {
		k := hashKey(x)
		if !it.SeekGE(k) || string(it.Key()) != string(k) {
			if err := it.Error(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("store: stored hash %d: %w", x, ErrNotFound)
		}
		if len(it.Value()) != tlog.HashSize {
			return nil, fmt.Errorf("store: stored hash %d has %d bytes", x, len(it.Value()))
		}
		copy(out[i][:], it.Value())
	}
	return out, nil
}

var _ tlog.HashReader = (*Store)(nil)

// IsNotFound reports whether err is ErrNotFound.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
