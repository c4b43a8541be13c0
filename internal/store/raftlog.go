package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

var (
	keyHardState = []byte{famRaft, 'h'}
	keyConfState = []byte{famRaft, 'c'}
	keySnapMeta  = []byte{famRaft, 's'}
	keyApplied   = []byte{famRaft, 'a'}
)

func entryKey(i uint64) []byte { return append([]byte{famRaft, 'e'}, be64(i)...) }

// RaftLog implements raft.Storage over the store. Raft reads through it; the
// replication loop writes through SaveRaft, the only writer, so the cached
// bounds below change only under that loop and are guarded for raft's reads
// from the same goroutine and the status readers from others.
//
// Contract (etcd-io/raft storage.go): entries are contiguous in
// [FirstIndex, LastIndex]; the entry at FirstIndex-1 is represented only by
// the snapshot metadata (its index and term).
type RaftLog struct {
	s *Store

	mu        sync.RWMutex
	hard      *pb.HardState
	conf      *pb.ConfState
	snap      *pb.SnapshotMetadata // index and term of the entry before first
	lastIndex uint64
	lastTerm  uint64

	// tail holds the newest entries SaveRaft persisted, contiguous and in
	// order, up to about tailMaxBytes of payload: raft reads back what it
	// has just persisted (the committed entries to apply; on a leader, the
	// entries to send), and under load an entry carries hundreds of
	// statements, so a Pebble read and an unmarshal of each was a copy of
	// every statement for nothing. The entries are raft's own; neither raft
	// nor the store changes an entry once persisted. Readers get a new
	// slice of the same entries.
	tail      []*pb.Entry
	tailBytes uint64

	// appends is SaveRaft's batch, kept between Readies.
	appends *BatchReuser
}

// tailMaxBytes bounds the payload RaftLog.tail keeps in memory. A variable
// only so that a test can lower it.
var tailMaxBytes uint64 = 16 << 20

var _ raft.Storage = (*RaftLog)(nil)

// RaftLog loads the raft state from the store.
func (s *Store) RaftLog() (*RaftLog, error) {
	l := &RaftLog{s: s, hard: &pb.HardState{}, conf: &pb.ConfState{}, snap: &pb.SnapshotMetadata{ConfState: &pb.ConfState{}}, appends: s.NewBatchReuser()}
	if err := s.getProto(keyHardState, l.hard); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err := s.getProto(keyConfState, l.conf); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err := s.getProto(keySnapMeta, l.snap); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	l.lastIndex, l.lastTerm = l.snap.GetIndex(), l.snap.GetTerm()
	k, v, err := s.lastInPrefix([]byte{famRaft, 'e'})
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, err
	default:
		var e pb.Entry
		if err := proto.Unmarshal(v, &e); err != nil {
			return nil, fmt.Errorf("store: raft entry %x: %w", k, err)
		}
		l.lastIndex, l.lastTerm = e.GetIndex(), e.GetTerm()
	}
	return l, nil
}

func (s *Store) getProto(key []byte, m proto.Message) error {
	v, err := s.Get(key)
	if err != nil {
		return err
	}
	if err := proto.Unmarshal(v, m); err != nil {
		return fmt.Errorf("store: decode %x: %w", key, err)
	}
	return nil
}

func (s *Store) lastInPrefix(prefix []byte) (k, v []byte, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	if !it.Last() {
		if err := it.Error(); err != nil {
			return nil, nil, err
		}
		return nil, nil, ErrNotFound
	}
	return append([]byte(nil), it.Key()...), append([]byte(nil), it.Value()...), nil
}

// InitialState implements raft.Storage.
func (l *RaftLog) InitialState() (*pb.HardState, *pb.ConfState, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return proto.Clone(l.hard).(*pb.HardState), proto.Clone(l.conf).(*pb.ConfState), nil
}

// FirstIndex implements raft.Storage.
func (l *RaftLog) FirstIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.snap.GetIndex() + 1, nil
}

// LastIndex implements raft.Storage.
func (l *RaftLog) LastIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.lastIndex, nil
}

// Term implements raft.Storage.
func (l *RaftLog) Term(i uint64) (uint64, error) {
	l.mu.RLock()
	first, last, snap := l.snap.GetIndex()+1, l.lastIndex, l.snap
	lastTerm := l.lastTerm
	l.mu.RUnlock()
	switch {
	case i == first-1:
		return snap.GetTerm(), nil
	case i < first:
		return 0, raft.ErrCompacted
	case i > last:
		return 0, raft.ErrUnavailable
	case i == last:
		return lastTerm, nil
	}
	if e := l.cached(i); e != nil {
		return e.GetTerm(), nil
	}
	var e pb.Entry
	if err := l.s.getProto(entryKey(i), &e); err != nil {
		return 0, fmt.Errorf("store: term of %d: %w", i, err)
	}
	return e.GetTerm(), nil
}

// cached returns entry i from the tail, or nil.
func (l *RaftLog) cached(i uint64) *pb.Entry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.tail) == 0 {
		return nil
	}
	first := l.tail[0].GetIndex()
	if i < first || i-first >= uint64(len(l.tail)) {
		return nil
	}
	return l.tail[i-first]
}

// fromTail returns Entries(lo, hi, maxSize) from the tail when the tail
// holds all of [lo, hi), or nil. lo < hi.
func (l *RaftLog) fromTail(lo, hi, maxSize uint64) []*pb.Entry {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.tail) == 0 || lo >= hi {
		return nil
	}
	first := l.tail[0].GetIndex()
	if lo < first || hi-first > uint64(len(l.tail)) {
		return nil
	}
	src := l.tail[lo-first : hi-first]
	n, size := 0, uint64(0)
	for _, e := range src {
		size += uint64(len(e.GetData()))
		if n > 0 && size > maxSize {
			break
		}
		n++
	}
	return append([]*pb.Entry(nil), src[:n]...)
}

// remember adds entries, just persisted, to the tail: after it if they
// follow it, in place of its suffix from their first index if they
// overwrite one (a new leader's), in place of all of it otherwise. Then the
// oldest go until the tail is within tailMaxBytes. Called under l.mu.
func (l *RaftLog) remember(entries []*pb.Entry) {
	if len(entries) == 0 {
		return
	}
	lo := entries[0].GetIndex()
	if len(l.tail) > 0 {
		first := l.tail[0].GetIndex()
		if lo < first || lo-first > uint64(len(l.tail)) {
			l.forgetTail()
		} else {
			for _, e := range l.tail[lo-first:] {
				l.tailBytes -= uint64(len(e.GetData()))
			}
			clear(l.tail[lo-first:])
			l.tail = l.tail[:lo-first]
		}
	}
	for _, e := range entries {
		l.tail = append(l.tail, e)
		l.tailBytes += uint64(len(e.GetData()))
	}
	drop, bytes := 0, l.tailBytes
	for bytes > tailMaxBytes && drop < len(l.tail)-1 {
		bytes -= uint64(len(l.tail[drop].GetData()))
		drop++
	}
	l.dropTail(drop)
}

// dropTail forgets the tail's first n entries. Called under l.mu.
func (l *RaftLog) dropTail(n int) {
	if n == 0 {
		return
	}
	for _, e := range l.tail[:n] {
		l.tailBytes -= uint64(len(e.GetData()))
	}
	// Copy the rest down so the array does not keep the old entries or
	// grow without bound as the front moves.
	rest := copy(l.tail, l.tail[n:])
	clear(l.tail[rest:])
	l.tail = l.tail[:rest]
}

// forgetTail empties the tail. Called under l.mu.
func (l *RaftLog) forgetTail() {
	clear(l.tail)
	l.tail = l.tail[:0]
	l.tailBytes = 0
}

// Entries implements raft.Storage. The returned slice is freshly allocated.
func (l *RaftLog) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	l.mu.RLock()
	first, last := l.snap.GetIndex()+1, l.lastIndex
	l.mu.RUnlock()
	if lo < first {
		return nil, raft.ErrCompacted
	}
	if hi > last+1 {
		return nil, raft.ErrUnavailable
	}
	if out := l.fromTail(lo, hi, maxSize); out != nil {
		return out, nil
	}
	it, err := l.s.db.NewIter(&pebble.IterOptions{LowerBound: entryKey(lo), UpperBound: entryKey(hi)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []*pb.Entry
	var size uint64
	want := lo
	for ok := it.First(); ok; ok = it.Next() {
		e := &pb.Entry{}
		if err := proto.Unmarshal(it.Value(), e); err != nil {
			return nil, fmt.Errorf("store: raft entry: %w", err)
		}
		if e.GetIndex() != want {
			return nil, fmt.Errorf("store: raft log gap: want entry %d, found %d", want, e.GetIndex())
		}
		size += uint64(len(e.GetData()))
		if len(out) > 0 && size > maxSize {
			break
		}
		out = append(out, e)
		want++
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	if len(out) == 0 && lo < hi {
		return nil, raft.ErrUnavailable
	}
	return out, nil
}

// Snapshot implements raft.Storage. Charter's snapshots carry only metadata
// here; the state they stand for is the store itself (see the replication
// package for how a snapshot is sent).
func (l *RaftLog) Snapshot() (*pb.Snapshot, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return &pb.Snapshot{Metadata: proto.Clone(l.snap).(*pb.SnapshotMetadata)}, nil
}

// Applied returns the last raft index whose effects are in the store.
func (s *Store) Applied() (uint64, error) {
	index, _, err := s.AppliedPosition()
	return index, err
}

// AppliedPosition returns the index and term of the last applied raft entry.
func (s *Store) AppliedPosition() (index, term uint64, err error) {
	v, err := s.Get(keyApplied)
	if errors.Is(err, ErrNotFound) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, err
	}
	return decodeApplied(v)
}

func decodeApplied(v []byte) (index, term uint64, err error) {
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("store: applied position of %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v[:8]), binary.BigEndian.Uint64(v[8:]), nil
}

// SetApplied records the raft entry (index, term) as applied, in the same
// batch as the state it produced.
func (b *Batch) SetApplied(index, term uint64) { b.Set(keyApplied, append(be64(index), be64(term)...)) }

// SaveRaft persists a Ready's hard state and entries in one batch, synced when
// mustSync (raft's MustSync): the entries then survive a crash before raft is
// told they are stable. Entries that conflict with the new ones (same index,
// from an older leader) are deleted in the same batch, so the log never holds
// a suffix from two terms.
func (l *RaftLog) SaveRaft(hs *pb.HardState, entries []*pb.Entry, mustSync bool) error {
	if (hs == nil || raft.IsEmptyHardState(hs)) && len(entries) == 0 {
		return nil
	}
	// One buffer of about the batch's size: grown by doubling, a batch of
	// a few hundred statements was copied several times over.
	size := 64
	for _, e := range entries {
		size += len(e.GetData()) + 64
	}
	b := l.appends.Begin(size)
	defer b.Close()
	if hs != nil && !raft.IsEmptyHardState(hs) {
		v, err := proto.Marshal(hs)
		if err != nil {
			return err
		}
		b.Set(keyHardState, v)
	}
	l.mu.RLock()
	oldLast := l.lastIndex
	l.mu.RUnlock()
	var buf []byte // the batch copies each value, so one buffer serves all
	for _, e := range entries {
		var err error
		if buf, err = (proto.MarshalOptions{}).MarshalAppend(buf[:0], e); err != nil {
			return err
		}
		b.Set(entryKey(e.GetIndex()), buf)
	}
	if n := len(entries); n > 0 {
		newLast := entries[n-1].GetIndex()
		if newLast < oldLast {
			b.DeleteRange(entryKey(newLast+1), entryKey(oldLast+1))
		}
	}
	if err := b.Commit(mustSync); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if hs != nil && !raft.IsEmptyHardState(hs) {
		l.hard = proto.Clone(hs).(*pb.HardState)
	}
	if n := len(entries); n > 0 {
		l.lastIndex, l.lastTerm = entries[n-1].GetIndex(), entries[n-1].GetTerm()
	}
	l.remember(entries)
	return nil
}

// SetConfState records the membership after a configuration change is
// applied. It is written with the apply batch.
func (l *RaftLog) SetConfState(b *Batch, cs *pb.ConfState) error {
	v, err := proto.Marshal(cs)
	if err != nil {
		return err
	}
	b.Set(keyConfState, v)
	l.mu.Lock()
	l.conf = proto.Clone(cs).(*pb.ConfState)
	l.mu.Unlock()
	return nil
}

// HardState returns the last persisted hard state.
func (l *RaftLog) HardState() *pb.HardState {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return proto.Clone(l.hard).(*pb.HardState)
}

// RepairCommit raises the persisted commit index to applied when a crash lost
// an unsynced hard-state update after the entries it committed were applied:
// anything applied was committed, and raft refuses to start with applied
// beyond commit.
func (l *RaftLog) RepairCommit(applied uint64) error {
	l.mu.RLock()
	hs := proto.Clone(l.hard).(*pb.HardState)
	last := l.lastIndex
	l.mu.RUnlock()
	if hs.GetCommit() >= applied {
		return nil
	}
	if applied > last {
		return fmt.Errorf("store: applied index %d is beyond the raft log (last %d): the store is corrupt", applied, last)
	}
	hs.Commit = proto.Uint64(applied)
	return l.SaveRaft(hs, nil, true)
}

// Compact discards the raft log up to and including index, which must be
// applied: its effects are in the store, which is the state a snapshot at
// index stands for. It stops short of the first entry a record stub still
// reads its body from (bodies.go), and returns the index it compacted to
// (first index - 1 when it discarded nothing). The entry's term is kept in
// the snapshot metadata, as raft needs it to match the next entry. Crash
// reasoning: the deletion and the new first index are one atomic batch; a
// crash before it leaves the longer log, which is harmless.
func (l *RaftLog) Compact(index uint64, conf *pb.ConfState) (uint64, error) {
	l.mu.RLock()
	first, last := l.snap.GetIndex()+1, l.lastIndex
	l.mu.RUnlock()
	if index > last {
		return first - 1, fmt.Errorf("store: compact to %d beyond the last raft entry %d", index, last)
	}
	if pinned, ok := l.s.pinnedRaftIndex(); ok && index >= pinned {
		index = pinned - 1
	}
	if index < first {
		return first - 1, nil
	}
	term, err := l.Term(index)
	if err != nil {
		return first - 1, err
	}
	meta := &pb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term), ConfState: proto.Clone(conf).(*pb.ConfState)}
	v, err := proto.Marshal(meta)
	if err != nil {
		return first - 1, err
	}
	b := l.s.NewBatch()
	defer b.Close()
	b.DeleteRange(entryKey(first), entryKey(index+1))
	b.Set(keySnapMeta, v)
	if err := b.Commit(false); err != nil {
		return first - 1, err
	}
	l.mu.Lock()
	l.snap = meta
	if len(l.tail) > 0 && l.tail[0].GetIndex() <= index {
		l.dropTail(int(min(index-l.tail[0].GetIndex()+1, uint64(len(l.tail)))))
	}
	l.mu.Unlock()
	return index, nil
}

// EntriesDiskUsage estimates the bytes the raft entries [FirstIndex,
// LastIndex] take on disk, for the retention accounting of a node that
// restarts with a log already written. It is Pebble's estimate: flushed
// tables only (entries still in the memtable and WAL are not counted) and
// compressed sizes, so it is low by up to a memtable's worth.
func (l *RaftLog) EntriesDiskUsage() (uint64, error) {
	l.mu.RLock()
	first, last := l.snap.GetIndex()+1, l.lastIndex
	l.mu.RUnlock()
	if last < first {
		return 0, nil
	}
	return l.s.db.EstimateDiskUsage(entryKey(first), entryKey(last+1))
}
