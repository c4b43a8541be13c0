// Package ledger is Charter's replicated state machine: it applies committed
// raft entries to the store (positions, Merkle tree, checkpoints, indexes),
// sequences the leader's proposals, makes checkpoints, and answers reads from
// committed state.
//
// # Life of a registration
//
//  1. The request's goroutine has verified the statement and computed its leaf
//     entry. Register checks the committed index for a duplicate, then joins
//     or creates the pending registration for that entry and queues it.
//  2. The sequencer (leader only) drains the queue into one batch and proposes
//     it to raft as one entry. Nothing in that loop waits on a client.
//  3. Raft persists the entry (one fsync per Ready) and commits it.
//  4. Apply, for every node, gives each new registration the next seqno,
//     appends its leaf, and writes record, indexes, stored hashes, ledger state
//     and the applied raft index in one atomic batch. Then it wakes the waiters.
//  5. The checkpointer (leader only) sees the tree grew, signs the new root
//     over committed state and proposes a checkpoint transaction; once that is
//     applied the registration's receipt is issuable.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
)

// Errors callers map to protocol responses (at the HTTP edge, not here).
var (
	// ErrNotLeader: this node cannot sequence writes now.
	ErrNotLeader = errors.New("ledger: this node is not the leader")
	// ErrOverloaded: the sequencing queue is full; retry later.
	ErrOverloaded = errors.New("ledger: too many registrations in flight")
	// ErrDropped: the proposal is known not to commit: raft refused it, or
	// a leader of a later term committed entries without it. Retry.
	ErrDropped = errors.New("ledger: proposal was not accepted by consensus")
	// ErrOutcomeUnknown: the proposal was handed to raft, but leadership
	// changed (or the proposal timed out) before this node saw it commit,
	// and it cannot tell yet whether it will: it may still commit under the
	// next leader. A registration is safe to retry (its entry id is its
	// content, so a committed one is answered as a duplicate).
	ErrOutcomeUnknown = errors.New("ledger: the outcome is unknown")
	// ErrNotFound: no such transaction, entry or key. It is log's, so that
	// readers of state below the ledger (internal/app) test for it too.
	ErrNotFound = log.ErrNotFound
	// ErrNotCovered: the transaction is committed but no checkpoint covers it yet.
	ErrNotCovered = errors.New("ledger: no checkpoint covers the transaction yet")
	// ErrStopped: the ledger is shutting down.
	ErrStopped = errors.New("ledger: stopped")
	// ErrInvalid: a submitted write set was refused when applied.
	ErrInvalid = errors.New("ledger: transaction refused when applied")
)

// Proposer is the consensus layer as the ledger uses it.
type Proposer interface {
	// Propose submits data as a raft entry. A nil error means raft accepted
	// it for replication, not that it will commit: a proposal can still be
	// lost in a leader change (the sequencer's failOrphans settles those).
	// An error wrapping ErrDropped means raft refused it (it is in no log);
	// any other error (a timeout, leadership lost while it waited) leaves
	// open whether raft took it.
	Propose(ctx context.Context, data []byte) error
	// Leader reports whether this node leads, and in which term.
	Leader() (isLeader bool, term uint64)
}

// TreeHeadSigner signs a checkpoint over a committed tree head with the
// service's keys. It is called only on the leader.
type TreeHeadSigner interface {
	SignTreeHead(size uint64, root [32]byte, issuedAt time.Time) (*log.Checkpoint, error)
}

// Config holds the ledger's tunables.
type Config struct {
	// CheckpointInterval is the longest a committed transaction waits for a
	// checkpoint. Default 50 ms.
	CheckpointInterval time.Duration
	// CheckpointMaxTx makes a checkpoint as soon as this many transactions
	// are uncovered. Default 5000.
	CheckpointMaxTx uint64
	// MaxBatch bounds the proposals in one raft entry. Default 4096.
	MaxBatch int
	// MaxBatchBytes bounds a raft entry's size. Default 8 MiB.
	MaxBatchBytes int
	// QueueSize bounds the registrations waiting to be sequenced. Default 65536.
	QueueSize int
}

func (c *Config) setDefaults() {
	if c.CheckpointInterval <= 0 {
		c.CheckpointInterval = 50 * time.Millisecond
	}
	if c.CheckpointMaxTx == 0 {
		c.CheckpointMaxTx = 5000
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 4096
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = 8 << 20
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1 << 16
	}
}

// State is the ledger's durable summary, written with every apply batch.
type State struct {
	_ struct{} `cbor:",toarray"`
	// Size is the number of transactions (and leaves).
	Size uint64
	// LastCheckpointSize and LastCheckpointSeqno describe the newest
	// checkpoint: the tree size it signs and its own position.
	LastCheckpointSize  uint64
	LastCheckpointSeqno uint64
	// LastContentSeqno is the newest transaction that is not a checkpoint;
	// a checkpoint is due only when it is beyond LastCheckpointSize, so an
	// idle ledger stays still.
	LastContentSeqno uint64
}

// Ledger is one node's replicated state machine.
type Ledger struct {
	st   *store.Store
	tree *log.Tree
	// applies is Apply's batch, kept between calls.
	applies *store.BatchReuser
	cfg     Config
	log     *slog.Logger
	m       *metrics

	mu    sync.RWMutex
	state State
	// covered is closed and replaced whenever a checkpoint is applied.
	covered chan struct{}
	// applied is closed and replaced whenever anything is applied.
	applied chan struct{}
	// pending registrations by leaf entry, from queueing until applied.
	pending map[[32]byte]*pendingReg
	// appliedTerm is the raft term of the newest applied entry. Once an
	// entry of a term later than a proposal's is applied, the proposal
	// either was applied before it or will never commit (failOrphans).
	appliedTerm uint64
	// orphanGrace is how long a proposal orphaned by a leader change waits
	// for that proof before it is answered ErrOutcomeUnknown.
	orphanGrace time.Duration

	queue chan *pendingReg
	kick  chan struct{}

	// checkpoints caches decoded checkpoints by seqno: every receipt needs
	// one, and most receipts are for the newest few.
	checkpoints checkpointCache
	// covering finds the checkpoint covering a recent entry without a
	// store seek.
	covering coveringIndex
	// recent holds the newest applied records for the chunk files.
	recent recentRecords
	// filter answers most duplicate checks of new entries without the
	// store.
	filter *entryFilter

	// writes counts applied write-set transactions (and restores), so that
	// state derived from key-value maps is re-read only when it may have
	// changed.
	writes atomic.Uint64
	// kv caches reads of the applied key-value state.
	kv *kvCache
}

// WritesVersion changes whenever key-value maps may have changed: after
// each applied write-set transaction and each snapshot restore. Callers
// caching values derived from the maps compare it.
func (l *Ledger) WritesVersion() uint64 { return l.writes.Load() }

type pendingReg struct {
	prop log.Proposal
	done chan struct{}
	// term is the raft term in which the leader proposed it; 0 while queued.
	term uint64
	// uncertain: Propose returned without saying whether raft took it (it
	// timed out, or leadership was lost while it waited).
	uncertain bool
	// orphaned is when failOrphans first found its leadership gone.
	orphaned time.Time
	// Set before done is closed.
	txid log.TxID
	err  error
}

// Open loads the ledger from the store and checks that the stored tree
// matches the newest checkpoint (startup is recovery: a mismatch means the
// store is damaged, and the node must not serve or sign from it).
func Open(st *store.Store, cfg Config, logger *slog.Logger) (*Ledger, error) {
	cfg.setDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	l := &Ledger{
		st: st, applies: st.NewBatchReuser(), cfg: cfg, log: logger, m: newMetrics(),
		covered: make(chan struct{}), applied: make(chan struct{}),
		pending:     map[[32]byte]*pendingReg{},
		queue:       make(chan *pendingReg, cfg.QueueSize),
		kick:        make(chan struct{}, 1),
		kv:          newKVCache(),
		filter:      newEntryFilter(),
		orphanGrace: defaultOrphanGrace,
	}
	st0, err := l.load()
	if err != nil {
		return nil, err
	}
	l.state = st0
	l.covering.reset(st0.LastCheckpointSize)
	l.tree = log.NewTree(int64(st0.Size), st)
	if err := l.checkTree(st0); err != nil {
		return nil, err
	}
	return l, nil
}

// load reads the ledger state from the store.
func (l *Ledger) load() (State, error) {
	var st State
	raw, err := l.st.LedgerState()
	switch {
	case store.IsNotFound(err):
	case err != nil:
		return st, err
	default:
		if err := cbor.Unmarshal(raw, &st); err != nil {
			return st, fmt.Errorf("ledger: state: %w", err)
		}
	}
	return st, nil
}

// checkTree verifies that the stored tree has the root the newest
// checkpoint signed.
func (l *Ledger) checkTree(st State) error {
	if st.LastCheckpointSize == 0 {
		return nil
	}
	cp, err := l.readCheckpoint(st.LastCheckpointSeqno)
	if err != nil {
		return fmt.Errorf("ledger: newest checkpoint: %w", err)
	}
	root, err := l.tree.Root(int64(cp.TreeSize))
	if err != nil {
		return fmt.Errorf("ledger: tree root at the newest checkpoint: %w", err)
	}
	if root != cp.Root {
		return fmt.Errorf("ledger: stored tree root at size %d is %x but the signed checkpoint says %x: the store is damaged", cp.TreeSize, root[:], cp.Root[:])
	}
	return nil
}

// Restore reloads the ledger after its store was replaced by a snapshot
// image, and checks the image's tree against its newest checkpoint.
func (l *Ledger) Restore() error {
	st, err := l.load()
	if err != nil {
		return err
	}
	l.tree.Reset(int64(st.Size))
	l.checkpoints.clear()
	l.covering.reset(st.LastCheckpointSize)
	l.filter.reset()
	l.recent.reset()
	l.kv.reset()
	l.writes.Add(1)
	if err := l.checkTree(st); err != nil {
		return err
	}
	l.mu.Lock()
	l.state = st
	close(l.applied)
	l.applied = make(chan struct{})
	close(l.covered)
	l.covered = make(chan struct{})
	l.mu.Unlock()
	l.m.applied(st, 0)
	return nil
}

// State returns a copy of the applied ledger state.
func (l *Ledger) State() State {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.state
}

// Tree exposes the Merkle tree for proofs over applied state.
func (l *Ledger) Tree() *log.Tree { return l.tree }
