// Package replication runs etcd raft for one node: the Ready loop that
// persists, sends, applies and advances, in that order, and the proposal and
// leadership API the ledger uses.
package replication

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/store"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// StateMachine applies committed entries. also must be written in the same
// atomic batch as the entries' effects (it records raft's configuration).
type StateMachine interface {
	Apply(entries []ledger.Entry, also func(*store.Batch) error) error
	// Restore reloads the state machine after the store was replaced by a
	// snapshot image.
	Restore() error
}

// Transport sends raft messages to peers. Send must not block on the network:
// raft tolerates lost messages, not a stalled Ready loop.
type Transport interface {
	Send(msgs []*pb.Message)
}

// Config configures a raft node.
type Config struct {
	// ID is this node's raft id, never reused (must be > 0).
	ID uint64
	// Bootstrap lists the voters of a new network and their base URLs; empty
	// when restarting or joining. A single-node dev network bootstraps with
	// just its own ID.
	Bootstrap map[uint64]string
	// Peers resolves peer ids to URLs; it is kept current as configuration
	// changes apply. Required with a transport.
	Peers *PeerTable
	// SnapshotEntries is how many applied raft entries are kept for
	// followers before the log is compacted; a follower further behind is
	// sent a snapshot. Default 10000.
	SnapshotEntries uint64
	// SnapshotDir stages incoming snapshots. Required with a transport.
	SnapshotDir string
	// TickInterval is raft's logical clock. Default 50 ms: with 10
	// election ticks a follower waits 0.5–1 s without a leader before it
	// campaigns, so a split vote still ends well within 3 s.
	TickInterval time.Duration
	// ElectionTicks and HeartbeatTicks follow raft.Config. Defaults 10 and 1.
	ElectionTicks, HeartbeatTicks int
}

// Validate checks the configuration and fills defaults.
func (c *Config) Validate() error {
	if c.ID == 0 {
		return errors.New("replication: Config.ID must be positive")
	}
	if c.TickInterval == 0 {
		c.TickInterval = 50 * time.Millisecond
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = 10
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = 1
	}
	if c.SnapshotEntries == 0 {
		c.SnapshotEntries = 10000
	}
	if c.Peers == nil {
		c.Peers = NewPeerTable(nil)
	}
	if c.HeartbeatTicks >= c.ElectionTicks {
		return fmt.Errorf("replication: HeartbeatTicks (%d) must be below ElectionTicks (%d)", c.HeartbeatTicks, c.ElectionTicks)
	}
	return nil
}

// Node is a running raft node.
type Node struct {
	cfg       Config
	raft      raft.Node
	st        *store.Store
	rlog      *store.RaftLog
	sm        StateMachine
	transport Transport
	log       *slog.Logger

	applied atomic.Uint64
	metrics metrics

	// reads holds the waiters of ReadIndex requests by request context.
	reads sync.Map // string -> chan uint64
	// appliedCh is closed and replaced whenever the applied index moves.
	appliedMu sync.Mutex
	appliedCh chan struct{}

	mu     sync.RWMutex
	leader uint64
	term   uint64
	conf   *pb.ConfState
	// leadLost is closed when this node stops leading; nil while it does
	// not lead.
	leadLost chan struct{}
}

// Start starts or restarts the raft node over st. On restart, raft resumes
// from the store's applied index and replays the committed entries after it.
func Start(cfg Config, st *store.Store, sm StateMachine, transport Transport, logger *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rlog, err := st.RaftLog()
	if err != nil {
		return nil, err
	}
	if cfg.SnapshotDir != "" {
		// The store completed any install it had begun; other staged
		// images will never be installed.
		if err := store.RemoveStaged(cfg.SnapshotDir); err != nil {
			return nil, err
		}
	}
	applied, err := st.Applied()
	if err != nil {
		return nil, err
	}
	if err := rlog.RepairCommit(applied); err != nil {
		return nil, err
	}
	rc := &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   rlog,
		Applied:                   applied,
		MaxSizePerMsg:             4 << 20,
		MaxCommittedSizePerReady:  64 << 20,
		MaxUncommittedEntriesSize: 256 << 20,
		MaxInflightMsgs:           256,
		CheckQuorum:               true,
		PreVote:                   true,
		// Writes reach the leader over HTTP, where they are verified; raft
		// never carries a proposal from a follower.
		DisableProposalForwarding: true,
		Logger:                    raftLogger{logger.With("component", "raft")},
	}
	n := &Node{appliedCh: make(chan struct{}), cfg: cfg, st: st, rlog: rlog, sm: sm, transport: transport, log: logger, metrics: newMetrics()}
	last, _ := rlog.LastIndex()
	hs := rlog.HardState()
	fresh := last == 0 && raft.IsEmptyHardState(hs)
	if fresh && len(cfg.Bootstrap) > 0 {
		var peers []raft.Peer
		for id, url := range cfg.Bootstrap {
			ctx, err := encodePeerContext(url)
			if err != nil {
				return nil, err
			}
			peers = append(peers, raft.Peer{ID: id, Context: ctx})
		}
		sort.Slice(peers, func(i, j int) bool { return peers[i].ID < peers[j].ID })
		n.raft = raft.StartNode(rc, peers)
	} else {
		n.raft = raft.RestartNode(rc)
	}
	_, cs, _ := rlog.InitialState()
	n.conf = cs
	n.applied.Store(applied)
	if err := n.loadPeers(); err != nil {
		return nil, err
	}
	if t, ok := transport.(*HTTPTransport); ok {
		t.setReporter(n.raft)
	}
	return n, nil
}

// Run is the Ready loop (etcd-io/raft doc.go, "Usage"): for each Ready,
//  1. write HardState and Entries to stable storage, synced if MustSync;
//  2. send Messages (only after step 1: a vote or an append acknowledgement
//     must not leave before what it promises is durable);
//  3. apply CommittedEntries and configuration changes;
//  4. call Advance.
//
// It returns when ctx ends or on a storage error, which is fatal: raft's
// state and the disk would disagree.
func (n *Node) Run(ctx context.Context) error {
	ticker := time.NewTicker(n.cfg.TickInterval)
	defer ticker.Stop()
	defer n.raft.Stop()
	// A lone voter need not wait an election timeout to lead; raft lets it
	// campaign once its configuration is applied (at once on restart, after
	// the bootstrap entries on creation).
	campaigned := false
	for {
		if !campaigned && len(n.cfg.Bootstrap) <= 1 && n.singleVoter() {
			campaigned = true
			_ = n.raft.Campaign(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			n.raft.Tick()
		case rd := <-n.raft.Ready():
			if err := n.handleReady(rd); err != nil {
				return err
			}
			n.raft.Advance()
		}
	}
}

func (n *Node) singleVoter() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return len(n.conf.GetVoters()) == 1 && n.conf.GetVoters()[0] == n.cfg.ID
}

func (n *Node) handleReady(rd raft.Ready) error {
	if rd.SoftState != nil {
		n.mu.Lock()
		if n.leader != rd.SoftState.Lead {
			n.log.Info("raft leader changed", "leader", rd.SoftState.Lead, "state", rd.SoftState.RaftState.String())
		}
		n.leader = rd.SoftState.Lead
		switch leads := rd.SoftState.RaftState == raft.StateLeader; {
		case leads && n.leadLost == nil:
			n.leadLost = make(chan struct{})
		case !leads && n.leadLost != nil:
			close(n.leadLost)
			n.leadLost = nil
		}
		n.mu.Unlock()
	}
	if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
		n.mu.Lock()
		n.term = rd.HardState.GetTerm()
		n.mu.Unlock()
	}
	// Step 1. A snapshot goes first: entries in the same Ready follow it.
	if !raft.IsEmptySnap(rd.Snapshot) {
		if err := n.installSnapshot(rd.Snapshot); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := n.rlog.SaveRaft(rd.HardState, rd.Entries, rd.MustSync); err != nil {
		return fmt.Errorf("replication: persist: %w", err)
	}
	n.metrics.persist.Observe(time.Since(start).Seconds())
	// Step 2.
	if n.transport != nil && len(rd.Messages) > 0 {
		n.transport.Send(rd.Messages)
	}
	for _, rs := range rd.ReadStates {
		if ch, ok := n.reads.LoadAndDelete(string(rs.RequestCtx)); ok {
			ch.(chan uint64) <- rs.Index
		}
	}
	// Step 3.
	if len(rd.CommittedEntries) == 0 {
		return nil
	}
	entries := make([]ledger.Entry, 0, len(rd.CommittedEntries))
	var conf *pb.ConfState
	var confChanges []*pb.ConfChangeV2
	for _, e := range rd.CommittedEntries {
		switch e.GetType() {
		case pb.EntryNormal:
			entries = append(entries, ledger.Entry{Index: e.GetIndex(), Term: e.GetTerm(), Data: e.GetData()})
		case pb.EntryConfChange, pb.EntryConfChangeV2:
			cc, err := decodeConfChange(e)
			if err != nil {
				return err
			}
			conf = n.raft.ApplyConfChange(cc)
			confChanges = append(confChanges, cc.AsV2())
			entries = append(entries, ledger.Entry{Index: e.GetIndex(), Term: e.GetTerm()})
		}
	}
	var also func(*store.Batch) error
	if conf != nil {
		c := conf
		also = func(b *store.Batch) error {
			for _, cc := range confChanges {
				if err := n.recordPeers(b, cc.GetChanges(), cc.GetContext()); err != nil {
					return err
				}
			}
			return n.rlog.SetConfState(b, c)
		}
	}
	start = time.Now()
	if err := n.sm.Apply(entries, also); err != nil {
		return fmt.Errorf("replication: apply: %w", err)
	}
	n.metrics.apply.Observe(time.Since(start).Seconds())
	if conf != nil {
		n.mu.Lock()
		n.conf = conf
		n.mu.Unlock()
	}
	applied := rd.CommittedEntries[len(rd.CommittedEntries)-1].GetIndex()
	n.setApplied(applied)
	return n.maybeCompact(applied)
}

func (n *Node) setApplied(index uint64) {
	n.applied.Store(index)
	n.appliedMu.Lock()
	close(n.appliedCh)
	n.appliedCh = make(chan struct{})
	n.appliedMu.Unlock()
}

// ReadBarrier waits until this node has applied everything the network had
// committed when it was called (raft's ReadIndex: the leader confirms its
// leadership with a quorum first). After it, a lookup that misses is a
// true miss, not a lagging follower's. It fails without a quorum.
func (n *Node) ReadBarrier(ctx context.Context) error {
	var rctx [16]byte
	if _, err := rand.Read(rctx[:]); err != nil {
		return err
	}
	ch := make(chan uint64, 1)
	n.reads.Store(string(rctx[:]), ch)
	defer n.reads.Delete(string(rctx[:]))
	if err := n.raft.ReadIndex(ctx, rctx[:]); err != nil {
		return err
	}
	var index uint64
	select {
	case index = <-ch:
	case <-ctx.Done():
		return fmt.Errorf("replication: no read index (is there a quorum?): %w", ctx.Err())
	}
	for {
		n.appliedMu.Lock()
		ch := n.appliedCh
		n.appliedMu.Unlock()
		if n.applied.Load() >= index {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// compactEvery is how many applied entries a lone voter's raft log may hold
// before it is compacted, and the most a replica's log grows between two
// compactions.
const compactEvery = 1024

// maybeCompact discards applied raft entries. Their effects are in the
// ledger, so the raft log only duplicates every statement on disk; cutting
// it soon after apply means most entries are deleted while still in
// Pebble's memtable and never written to a table at all.
//
// Which entries may go:
//   - a lone voter needs none of them;
//   - the leader keeps what its recently active followers have not yet
//     acknowledged, but never more than SnapshotEntries: a follower further
//     behind (or down) is sent a snapshot when it returns;
//   - a follower keeps min(SnapshotEntries, compactEvery), enough for the
//     others to catch up from its log if it becomes leader.
func (n *Node) maybeCompact(applied uint64) error {
	first, _ := n.rlog.FirstIndex()
	keep := min(n.cfg.SnapshotEntries, compactEvery)
	slack := keep
	leader, _ := n.Leader()
	switch {
	case n.singleVoter():
		keep, slack = 0, compactEvery
	case leader:
		keep, slack = 0, min(n.cfg.SnapshotEntries, 256)
	}
	if applied < first+keep+slack {
		return nil
	}
	target := applied - keep
	if leader && !n.singleVoter() {
		st := n.raft.Status()
		for id, pr := range st.Progress {
			if id != n.cfg.ID && pr.RecentActive && pr.Match < target {
				target = pr.Match
			}
		}
		if applied > n.cfg.SnapshotEntries {
			target = max(target, applied-n.cfg.SnapshotEntries)
		}
		if target < first+slack {
			return nil
		}
	}
	n.mu.RLock()
	conf := n.conf
	n.mu.RUnlock()
	if err := n.rlog.Compact(target, conf); err != nil {
		return fmt.Errorf("replication: compact raft log: %w", err)
	}
	return nil
}

func decodeConfChange(e *pb.Entry) (pb.ConfChangeI, error) {
	if e.GetType() == pb.EntryConfChange {
		var cc pb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return nil, fmt.Errorf("replication: conf change at %d: %w", e.GetIndex(), err)
		}
		return &cc, nil
	}
	var cc pb.ConfChangeV2
	if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
		return nil, fmt.Errorf("replication: conf change v2 at %d: %w", e.GetIndex(), err)
	}
	return &cc, nil
}

// Applied is the last raft index applied to the state machine.
func (n *Node) Applied() uint64 { return n.applied.Load() }

// Committed is the commit index in raft's persisted hard state.
func (n *Node) Committed() uint64 { return n.rlog.HardState().GetCommit() }

// errLeadershipLost ends a Propose whose node stopped leading while it
// waited.
var errLeadershipLost = errors.New("replication: leadership lost while proposing")

// Propose implements ledger.Proposer. It does not wait for a leader: raft's
// Propose blocks while its node knows none (a leader that lost its quorum
// steps down to that state), so a proposal made as the node stops leading
// is ended when the Ready loop sees it stop, and one made on a node that
// does not lead is refused at once. A refusal wraps ledger.ErrDropped: the
// entry is in no log. A proposal ended while it waited may or may not have
// been taken by raft, and says so by wrapping ledger.ErrOutcomeUnknown.
func (n *Node) Propose(ctx context.Context, data []byte) error {
	n.mu.RLock()
	lost := n.leadLost
	n.mu.RUnlock()
	if lost == nil {
		return fmt.Errorf("%w: %v", ledger.ErrDropped, raft.ErrProposalDropped)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-lost:
			cancel(errLeadershipLost)
		case <-ctx.Done():
		}
	}()
	err := n.raft.Propose(ctx, data)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrProposalDropped):
		return fmt.Errorf("%w: %v", ledger.ErrDropped, err)
	case errors.Is(context.Cause(ctx), errLeadershipLost):
		return fmt.Errorf("%w: %v", ledger.ErrOutcomeUnknown, errLeadershipLost)
	default:
		return fmt.Errorf("%w: %v", ledger.ErrOutcomeUnknown, err)
	}
}

// Leader implements ledger.Proposer.
func (n *Node) Leader() (bool, uint64) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.leader == n.cfg.ID, n.term
}

// Status is a snapshot of raft's view, for /node/consensus.
func (n *Node) Status() raft.Status { return n.raft.Status() }

type raftLogger struct{ l *slog.Logger }

func (r raftLogger) Debug(v ...any)                 { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Debugf(format string, v ...any) { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Error(v ...any)                 { r.l.Error(fmt.Sprint(v...)) }
func (r raftLogger) Errorf(format string, v ...any) { r.l.Error(fmt.Sprintf(format, v...)) }
func (r raftLogger) Info(v ...any)                  { r.l.Debug(fmt.Sprint(v...)) }
func (r raftLogger) Infof(format string, v ...any)  { r.l.Debug(fmt.Sprintf(format, v...)) }
func (r raftLogger) Warning(v ...any)               { r.l.Warn(fmt.Sprint(v...)) }
func (r raftLogger) Warningf(format string, v ...any) {
	r.l.Warn(fmt.Sprintf(format, v...))
}
func (r raftLogger) Fatal(v ...any)                 { r.l.Error(fmt.Sprint(v...)); panic(fmt.Sprint(v...)) }
func (r raftLogger) Fatalf(format string, v ...any) { r.Fatal(fmt.Sprintf(format, v...)) }
func (r raftLogger) Panic(v ...any)                 { r.Fatal(v...) }
func (r raftLogger) Panicf(format string, v ...any) { r.Fatal(fmt.Sprintf(format, v...)) }

// LeaderID is the id of the leader this node knows of, or 0.
func (n *Node) LeaderID() uint64 {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.leader
}

// PeerURL returns where to reach peer id (its dial override, else its URL).
func (n *Node) PeerURL(id uint64) (string, bool) { return n.cfg.Peers.DialURL(id) }
