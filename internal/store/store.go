// Package store is Charter's one embedded database per node: a Pebble store
// that holds the raft log and hard state, the ledger (transactions, Merkle tree
// stored hashes, checkpoints) and the key-value maps; the snapshot images
// that carry them between nodes (snapshot.go), and the history a state
// image leaves out, its gap and its verified backfill (history.go).
//
// # Key space
//
// Every key starts with one byte that names its family, so families never
// interleave and each can be scanned or dropped as a range:
//
//	0x00 "v"                    schema version (uint64, big-endian)
//	0x00 "g"                    history gap: be64(next) be64(floor) (history.go)
//	0x01 'e' be64(index)        raft entry (protobuf)
//	0x01 'h'                    raft HardState (protobuf)
//	0x01 'c'                    raft ConfState (protobuf)
//	0x01 's'                    raft snapshot metadata (protobuf)
//	0x01 'a'                    applied raft index (be64)
//	0x02 't' be64(seqno)        ledger transaction record (log.Record CBOR, or a stub: bodies.go)
//	0x02 'n'                    ledger state (log.State CBOR): size, view, checkpoints
//	0x02 'x' be64(i)            Merkle tree stored hash i (tlog.StoredHashIndex)
//	0x02 'k' be64(treeSize)     checkpoint covering treeSize: be64(seqno of its tx)
//	0x02 'd' entry[32]          be64(seqno) be64(view) of the registration with that leaf entry
//	0x03 map 0x00 key           key-value map entry
//
// # Durability
//
// Writes that raft needs before it may send or acknowledge (entries, hard
// state) go through SaveRaft, which syncs when raft says MustSync. Ledger
// application (Apply batches) is not synced: the applied index is written in
// the same atomic batch as the state it produced, so a crash loses at most a
// suffix of applications, which replay from the synced raft log on restart.
// A registration's record may be a stub whose statement is in its raft
// entry or the node's ledger files (bodies.go): the raft log keeps every
// entry a stub still reads until the files have synced its record.
package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/charterlog/charter/internal/fault"
	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// SchemaVersion is the on-disk layout this code reads and writes. Open refuses
// any other, so an old binary never misreads a newer store.
const SchemaVersion = 2

// blobMinimumSize is the smallest value the store writes to a blob file
// rather than inline in a table (Open's value separation policy).
const blobMinimumSize = 512

// Key families.
const (
	famMeta   = 0x00
	famRaft   = 0x01
	famLedger = 0x02
	famKV     = 0x03
)

var keySchema = []byte{famMeta, 'v'}

// ErrNotFound is returned by Get when a key is absent.
var ErrNotFound = errors.New("store: not found")

// Store wraps one Pebble database.
type Store struct {
	db  *pebble.DB
	log *slog.Logger

	// gap is the history this store lacks (history.go), nil when it is
	// complete; histChanged is closed at its next change (histMu).
	gap         atomic.Pointer[HistoryGap]
	histMu      sync.Mutex
	histChanged chan struct{}
	// writeMu orders a backfilled range's batch with a snapshot install,
	// which replaces the gap the range was verified for.
	writeMu sync.Mutex

	// stalls accounts Pebble's write stalls (metrics.go).
	stalls stallClock

	// bodies is the ledger files that hold record bodies (bodies.go).
	bodies bodies
}

// Open opens or creates the store in dir. A new store gets the current schema
// version in a synced write before anything else, so a store without a version
// key is always one that was never used.
func Open(dir string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cache := pebble.NewCache(256 << 20)
	defer cache.Unref()
	opts := &pebble.Options{
		Logger: pebbleLogger{logger},
		// Receipts read recent records, stored hashes and checkpoints; a
		// block cache that holds the hot part of the tree keeps those off
		// the disk.
		Cache:        cache,
		MemTableSize: 64 << 20,
		// Value separation (blob files) needs this format; Open ratchets
		// an older store up to it, once.
		FormatMajorVersion: pebble.FormatValueSeparation,
	}
	// Statements are large values under small keys, written once and
	// rarely read again (receipts read recent records from memory). Kept
	// inline, every compaction that moves a record's key rewrites the
	// statement with it: at 10^5 registrations, about a fifth of a node's
	// CPU went to compactions. In blob files they are written once at
	// flush and compactions move only the key and a reference. Smaller
	// values (hashes, the entry index, most app values) stay inline, where
	// a read is one block. The policy is CockroachDB's production default
	// shape; the garbage a deleted value leaves (raft entries that outlive
	// a memtable, overwritten app values) is rewritten away once it is a
	// fifth of a blob file and five minutes old.
	opts.Experimental.ValueSeparationPolicy = func() pebble.ValueSeparationPolicy {
		return pebble.ValueSeparationPolicy{
			Enabled:               true,
			MinimumSize:           blobMinimumSize,
			MaxBlobReferenceDepth: 10,
			RewriteMinimumAge:     5 * time.Minute,
			TargetGarbageRatio:    0.2,
		}
	}
	// Duplicate detection looks up every new statement's leaf entry, and
	// almost all are absent: bloom filters answer those without reading
	// table blocks.
	//
	// Blocks of 32 KiB rather than Pebble's 4 KiB, in tables and blob
	// files, as CockroachDB runs it: every block a flush or compaction
	// writes is one write system call, and a registration's statement
	// filled about one 4 KiB block per table written. Reads are of recent
	// records and hashes, which the block cache holds.
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
		opts.Levels[i].BlockSize = 32 << 10
	}
	if fault.Armed(fault.StorageWriteError) {
		opts.FS = failingWrites(fault.StorageWritesBeforeError)
	}
	s := &Store{log: logger}
	opts.EventListener = &pebble.EventListener{
		WriteStallBegin: func(pebble.WriteStallBeginInfo) { s.stalls.begin() },
		WriteStallEnd:   s.stalls.end,
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", dir, err)
	}
	s.db = db
	if err := s.ensureVersion(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.recoverInstall(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadHistory(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) ensureVersion() error {
	v, err := s.Get(keySchema)
	if errors.Is(err, ErrNotFound) {
		return s.db.Set(keySchema, be64(SchemaVersion), pebble.Sync)
	}
	if err != nil {
		return err
	}
	if len(v) != 8 || binary.BigEndian.Uint64(v) != SchemaVersion {
		return fmt.Errorf("store: schema version %x on disk, this binary reads %d; refusing to open", v, SchemaVersion)
	}
	return nil
}

// Settle compacts the whole store, so that what a bulk write left for
// compactions to do (an imported ledger) is done now rather than charged
// to the writes that follow. Benchmarks of a large ledger call it after
// filling one.
func (s *Store) Settle(ctx context.Context) error {
	return s.db.Compact(ctx, []byte{0}, bytes.Repeat([]byte{0xff}, 16), true)
}

// Close flushes and closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Get returns a copy of the value of key, or ErrNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: get: %w", err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, nil
}

// SeekGE returns the first key and value at or after key within the key's
// family prefix (the first len(prefix) bytes must match), or ErrNotFound.
func (s *Store) SeekGE(prefix, key []byte) (k, v []byte, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: key, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, nil, fmt.Errorf("store: iter: %w", err)
	}
	defer it.Close()
	if !it.First() {
		if err := it.Error(); err != nil {
			return nil, nil, fmt.Errorf("store: seek: %w", err)
		}
		return nil, nil, ErrNotFound
	}
	return append([]byte(nil), it.Key()...), append([]byte(nil), it.Value()...), nil
}

// Batch is an atomic group of writes.
type Batch struct {
	b *pebble.Batch
	s *Store
	// pin is the raft entries the batch's record stubs point into
	// (bodies.go), pinned when the batch commits.
	pin    pin
	pinned bool
	// home, when set, takes the batch back after a successful commit
	// (NewBatchReuser).
	home *BatchReuser
}

// A BatchReuser hands out a batch whose buffer is kept from one commit to
// the next. The raft log's appends and the ledger's applies each commit a
// batch of hundreds of statements many times a second: a new batch, or one
// from Pebble's pool (which batches of every size share), rarely had a
// buffer that large, so each was allocated and cleared anew, about 4 KB of
// garbage per registration on every node.
//
// A batch is handed out to one caller at a time: a Begin while the kept
// batch is out gets a batch of its own, so overlapping callers are safe,
// only not spared the allocation.
type BatchReuser struct {
	s    *Store
	mu   sync.Mutex
	kept *pebble.Batch // nil while out, or after a failed commit
}

// maxReusedBatch bounds the buffer a BatchReuser keeps: a catch-up apply
// of many entries may take tens of MiB once, and is not worth holding.
const maxReusedBatch = 16 << 20

// NewBatchReuser returns a reuser of batches of this store.
func (s *Store) NewBatchReuser() *BatchReuser { return &BatchReuser{s: s} }

// Begin starts an atomic write batch for about size bytes of encoded
// writes (a batch that grows by doubling copies what it holds at each
// step), in the kept buffer when it is free.
func (r *BatchReuser) Begin(size int) *Batch {
	r.mu.Lock()
	pb := r.kept
	r.kept = nil
	r.mu.Unlock()
	if pb == nil {
		pb = r.s.db.NewBatchWithSize(size, pebble.WithMaxRetainedSizeBytes(maxReusedBatch))
	}
	return &Batch{b: pb, s: r.s, home: r}
}

// keep takes back a committed batch, emptied, unless one is kept already.
func (r *BatchReuser) keep(pb *pebble.Batch) {
	pb.Reset()
	r.mu.Lock()
	if r.kept == nil {
		r.kept, pb = pb, nil
	}
	r.mu.Unlock()
	if pb != nil {
		_ = pb.Close()
	}
}

// NewBatch starts an atomic write batch.
func (s *Store) NewBatch() *Batch { return &Batch{b: s.db.NewBatch(), s: s} }

// Set adds key=value to the batch. The batch copies both.
func (b *Batch) Set(key, value []byte) { _ = b.b.Set(key, value, nil) }

// Delete adds a deletion of key to the batch.
func (b *Batch) Delete(key []byte) { _ = b.b.Delete(key, nil) }

// DeleteRange deletes [start, end).
func (b *Batch) DeleteRange(start, end []byte) { _ = b.b.DeleteRange(start, end, nil) }

// Len is the batch's encoded size in bytes.
func (b *Batch) Len() int { return b.b.Len() }

// Commit applies the batch atomically. With sync, it returns only after the
// write is durable (fsync of Pebble's WAL); without, a process crash may lose
// it but never tears it.
func (b *Batch) Commit(sync bool) error {
	opts := pebble.NoSync
	if sync {
		opts = pebble.Sync
	}
	if err := b.b.Commit(opts); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	if b.pinned {
		// Before the caller can publish the records, so before the files
		// can sync them or raft compact their entries.
		b.s.addPin(b.pin)
	}
	// Closing returns the batch to Pebble's pool (or its reuser), where
	// another goroutine may take it at once: this Batch must not touch it
	// again, so a deferred Close after Commit is a no-op.
	pb := b.b
	b.b = nil
	if b.home != nil {
		b.home.keep(pb)
		return nil
	}
	return pb.Close()
}

// Close releases an uncommitted batch (a reuser does not take it back: a
// batch whose commit failed is not reused); after Commit it does nothing.
func (b *Batch) Close() {
	if b.b != nil {
		_ = b.b.Close()
		b.b = nil
	}
}

func be64(v uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return b[:]
}

// prefixEnd is the smallest key greater than every key with the prefix.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}
func (p pebbleLogger) Fatalf(format string, args ...any) {
	// Pebble calls Fatalf on unrecoverable corruption; it expects the call
	// not to return. Log first so the reason is in the node's log.
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble", "fatal", true)
	panic(fmt.Sprintf(format, args...))
}

var _ io.Closer = (*Store)(nil)

// failingWrites is the default file system with every write after the
// first n failing (fault.StorageWriteError).
func failingWrites(n int64) vfs.FS {
	var writes atomic.Int64
	return errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind.ReadOrWrite() == errorfs.OpIsWrite && writes.Add(1) > n {
			return errorfs.ErrInjected
		}
		return nil
	}))
}
