// Package replication runs etcd raft for one node: the Ready loop that
// persists, sends, applies and advances, in that order, and the proposal and
// leadership API the ledger uses.
package replication

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
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
// raft tolerates lost messages, not a stalled Ready loop. A Transport that
// also has SetReporter(Reporter) is handed the Node when it starts, to
// report what it could not deliver (package peer's HTTPTransport does).
type Transport interface {
	Send(msgs []*pb.Message)
}

// Reporter is the part of raft a transport reports delivery failures to:
// an unreachable peer (raft slows its probes) and a snapshot's outcome
// (raft resumes or retries the follower). *Node is one.
type Reporter interface {
	ReportUnreachable(id uint64)
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
}

// SnapshotSource produces a consistent image of this node's applied state.
type SnapshotSource interface {
	// OpenSnapshot returns the image's raft position (index, term and
	// configuration of the last applied entry), the base it is relative to
	// (the follower's, if this node holds the same ledger prefix; else
	// none) and its bytes.
	OpenSnapshot(follower store.Base) (*pb.SnapshotMetadata, store.Base, io.ReadCloser, error)
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
	// RegisteredURL, if set, is where the ledger's other records of the
	// network's nodes (outside MapNodes) put node id, or "". A restarted
	// node dials a peer that MapNodes records without a URL there: networks
	// created before 2026-12-06 record their first node so.
	RegisteredURL func(id uint64) string
	// LogRetentionBytes bounds the raft log the leader keeps for followers
	// that lag or are down (payload bytes of its entries): past it, the
	// oldest entries go even if a follower still needs them, and that
	// follower is sent a snapshot when it returns. Default 1 GiB.
	LogRetentionBytes uint64
	// LogRetention bounds the same log by age: entries persisted longer ago
	// than this go even if a follower still needs them. Default 10 min: a
	// follower down for less, and within LogRetentionBytes, catches up from
	// the log.
	LogRetention time.Duration
	// SnapshotEntries, if set, also bounds that log by count: a follower
	// more than this many entries behind the leader's applied index is sent
	// a snapshot. 0 (the default) is no bound by count. Tests set it low to
	// force snapshots.
	SnapshotEntries uint64
	// SnapshotDir stages incoming snapshots. Required with a transport.
	SnapshotDir string
	// TickInterval is raft's logical clock. Default 50 ms: with 10
	// election ticks a follower waits 0.5–1 s without a leader before it
	// campaigns, so a split vote still ends well within 3 s.
	TickInterval time.Duration
	// ElectionTicks and HeartbeatTicks follow raft.Config. Defaults 10 and 1.
	ElectionTicks, HeartbeatTicks int

	// Now is the clock retention ages are measured by; default time.Now.
	// Only tests set it (a test hook, exported because package peer's
	// cluster tests, which run Nodes over the HTTP transport, jump it to
	// age the log of a follower that is down).
	Now func() time.Time
	// tick, if set, is raft's clock instead of a TickInterval ticker: each
	// value received is one Tick (tests advance time tick by tick).
	tick <-chan time.Time
	// startRaft, if set, replaces startNode (tests drive a raft.RawNode
	// one Ready at a time).
	startRaft func(rc *raft.Config, peers []raft.Peer) raft.Node
}

// Retention defaults.
const (
	DefaultLogRetentionBytes = 1 << 30
	DefaultLogRetention      = 10 * time.Minute
)

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
	if c.LogRetentionBytes == 0 {
		c.LogRetentionBytes = DefaultLogRetentionBytes
	}
	if c.LogRetention == 0 {
		c.LogRetention = DefaultLogRetention
	}
	if c.LogRetention < 0 {
		return fmt.Errorf("replication: LogRetention %v is negative", c.LogRetention)
	}
	if c.Now == nil {
		c.Now = time.Now
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
	// installing is set while a snapshot install replaces the store.
	installing atomic.Bool
	metrics    metrics

	// reads holds the waiters of ReadIndex requests by request context.
	reads sync.Map // string -> chan uint64
	// appliedCh is closed and replaced whenever the applied index moves.
	appliedMu sync.Mutex
	appliedCh chan struct{}

	mu     sync.RWMutex
	leader uint64
	term   uint64
	conf   *pb.ConfState

	// ret accounts for the raft log's age and size; Ready loop only.
	ret retention
	// snapMu guards snaps: the snapshots this leader has sent, or is
	// sending, by follower, which hold back compaction (see maybeCompact).
	snapMu sync.Mutex
	snaps  map[uint64]*snapshotPin
	// leadLost is closed when this node stops leading; nil while it does
	// not lead.
	leadLost chan struct{}
}

// snapshotPin holds the raft log for a follower that is being sent a
// snapshot, so that the snapshot is not followed by another one:
//
//   - while the transfer runs, from the index raft chose for it: after the
//     transfer raft resumes the follower by probing at that index (the
//     image itself is newer, see sendSnapshot), and if the leader had
//     compacted past it meanwhile, raft would send a second snapshot;
//   - after the transfer, from the follower's Match, until the follower has
//     replicated up to the leader's last index at the end of the transfer:
//     everything written while the image was in flight is sent from the
//     log, even if it exceeds the retention bounds.
//
// A pin ends there, when the transfer fails (raft sends a new snapshot,
// pinned afresh), when the follower leaves the configuration, or
// LogRetention after a transfer the follower never acknowledged.
type snapshotPin struct {
	index uint64
	// done is when the transfer ended (zero while it runs), until the
	// leader's last index then.
	done  time.Time
	until uint64
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
	n := &Node{appliedCh: make(chan struct{}), cfg: cfg, st: st, rlog: rlog, sm: sm, transport: transport, log: logger, metrics: newMetrics(),
		snaps: map[uint64]*snapshotPin{}}
	last, _ := rlog.LastIndex()
	first, _ := rlog.FirstIndex()
	size, err := rlog.EntriesDiskUsage()
	if err != nil {
		return nil, err
	}
	n.ret.reset(first, last, size, cfg.Now())
	n.metrics.logBytes.Set(float64(n.ret.bytes()))
	hs := rlog.HardState()
	fresh := last == 0 && raft.IsEmptyHardState(hs)
	var peers []raft.Peer
	if fresh && len(cfg.Bootstrap) > 0 {
		for id, url := range cfg.Bootstrap {
			ctx, err := encodePeerContext(url)
			if err != nil {
				return nil, err
			}
			peers = append(peers, raft.Peer{ID: id, Context: ctx})
		}
		sort.Slice(peers, func(i, j int) bool { return peers[i].ID < peers[j].ID })
	}
	startRaft := startNode
	if cfg.startRaft != nil {
		startRaft = cfg.startRaft
	}
	n.raft = startRaft(rc, peers)
	_, cs, _ := rlog.InitialState()
	n.conf = cs
	n.applied.Store(applied)
	if err := n.loadPeers(); err != nil {
		return nil, err
	}
	if t, ok := transport.(interface{ SetReporter(Reporter) }); ok {
		t.SetReporter(n)
	}
	return n, nil
}

// startNode starts raft: a new network's first node with its peers (the
// bootstrap voters), else over what the storage holds.
func startNode(rc *raft.Config, peers []raft.Peer) raft.Node {
	if len(peers) > 0 {
		return raft.StartNode(rc, peers)
	}
	return raft.RestartNode(rc)
}

// Run is the Ready loop (etcd-io/raft doc.go, "Usage"): for each Ready,
//  1. write HardState and Entries to stable storage, synced if MustSync;
//  2. send Messages: a vote or an append acknowledgement only after step 1
//     (it must not leave before what it promises is durable), the others
//     before it (splitByDurability);
//  3. apply CommittedEntries and configuration changes;
//  4. call Advance.
//
// It returns when ctx ends or on a storage error, which is fatal: raft's
// state and the disk would disagree.
func (n *Node) Run(ctx context.Context) error {
	tick := n.cfg.tick
	if tick == nil {
		ticker := time.NewTicker(n.cfg.TickInterval)
		defer ticker.Stop()
		tick = ticker.C
	}
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
		case <-tick:
			n.raft.Tick()
		case rd := <-n.raft.Ready():
			if err := n.handleReady(rd); err != nil {
				return err
			}
			n.raft.Advance()
		}
	}
}

// splitByDurability splits a Ready's messages into those that may leave
// before its entries and hard state are written (early) and the votes and
// append acknowledgements that must wait for the write (late). Order among
// each group is kept.
func splitByDurability(msgs []*pb.Message) (early, late []*pb.Message) {
	for _, m := range msgs {
		switch m.GetType() {
		case pb.MsgAppResp, pb.MsgVoteResp, pb.MsgPreVoteResp:
			late = append(late, m)
		default:
			early = append(early, m)
		}
	}
	return early, late
}

func (n *Node) send(msgs []*pb.Message) {
	if n.transport != nil && len(msgs) > 0 {
		n.pinSnapshots(msgs)
		n.transport.Send(msgs)
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
		if rd.SoftState.Lead != n.cfg.ID {
			// Pins are a leader's; a later term starts afresh.
			n.snapMu.Lock()
			clear(n.snaps)
			n.snapMu.Unlock()
		}
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
	// Step 2, before step 1 for what promises nothing about this node's
	// disk: appends, heartbeats, snapshots and vote requests leave before
	// the write, so a leader's write overlaps its followers' (raft thesis
	// 10.2.1). Raft's own rule for asynchronous storage draws the line:
	// only the responses that vote (MsgAppResp, MsgVoteResp,
	// MsgPreVoteResp) wait until what they vouch for is durable. A leader
	// still counts its own entries only once written: its self-ack is
	// raft's, delivered after Advance.
	early, late := splitByDurability(rd.Messages)
	n.send(early)
	start := time.Now()
	persisting := n.metrics.persisting.Begin()
	err := n.rlog.SaveRaft(rd.HardState, rd.Entries, rd.MustSync)
	persisting.Finish(n.metrics.persistStage)
	if err != nil {
		return fmt.Errorf("replication: persist: %w", err)
	}
	n.metrics.persist.Observe(time.Since(start).Seconds())
	if k := len(rd.Entries); k > 0 {
		var size uint64
		for _, e := range rd.Entries {
			size += uint64(len(e.GetData())) + entryOverhead
		}
		n.ret.appended(rd.Entries[0].GetIndex(), rd.Entries[k-1].GetIndex(), size, n.cfg.Now())
		n.metrics.logBytes.Set(float64(n.ret.bytes()))
	}
	// Step 2, the rest.
	n.send(late)
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
			written := map[uint64]NodeInfo{}
			for _, cc := range confChanges {
				if err := n.recordPeers(b, cc.GetChanges(), cc.GetContext(), written); err != nil {
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
// before it is compacted, and the most a follower's log grows between two
// compactions.
const compactEvery = 1024

// leaderSlack is how many entries a leader's compaction point must have
// moved before it compacts: one DeleteRange per that many entries, not per
// Ready.
const leaderSlack = 256

// compactBytes compacts sooner than the entry counts above when the
// entries that may go hold this many bytes. A raft entry carries a batch
// of statements (hundreds under load), so 1024 of them held about 100 MiB:
// more than Pebble's 64 MiB memtable, and every statement reached a table
// twice, once in its raft entry and once in its record. A few MiB is a
// small part of one memtable, so most entries are deleted while still in
// it and the flush drops them; a DeleteRange every few MiB costs little.
const compactBytes = 4 << 20

// followerKeepBytes bounds, beside compactEvery, the applied log a follower
// keeps for the others to resume from if it becomes leader: a follower
// further behind than this gets a snapshot from it.
const followerKeepBytes = 8 << 20

// entryOverhead approximates a raft entry's bytes beyond its payload (key,
// term, index, encoding) in the retention accounting.
const entryOverhead = 24

// maybeCompact discards applied raft entries that no follower needs. Their
// effects are in the ledger, so the raft log only duplicates every
// statement on disk; cutting it soon after apply means most entries are
// deleted while still in Pebble's memtable and never written to a table.
//
// Which entries may go:
//   - a lone voter needs none of them;
//   - the leader keeps every entry above the Match of each follower in the
//     configuration, down or not (raft stops counting a follower as
//     RecentActive an election timeout after it goes silent; a follower
//     restarting after a second must still find its next entry here), but
//     not beyond the retention bounds (LogRetentionBytes, LogRetention and,
//     if set, SnapshotEntries): a follower further behind is sent a
//     snapshot. A snapshot holds the log from its index, bounds or not,
//     until the follower has caught up with what was written while it was
//     in flight (see snapshotPin);
//   - a follower keeps min(SnapshotEntries, compactEvery) entries, enough
//     for the others to resume from its log if it becomes leader soon after
//     they fell behind.
//
// Crash safety is RaftLog.Compact's: one batch deletes the entries
// (DeleteRange) and records the new first index.
func (n *Node) maybeCompact(applied uint64) error {
	first, _ := n.rlog.FirstIndex()
	leader, _ := n.Leader()
	var target, slack uint64
	switch {
	case n.singleVoter():
		target, slack = applied, compactEvery
	case leader:
		target, slack = n.leaderCompactTarget(applied), leaderSlack
		if se := n.cfg.SnapshotEntries; se > 0 {
			slack = min(slack, se)
		}
	default:
		keep := uint64(compactEvery)
		if se := n.cfg.SnapshotEntries; se > 0 {
			keep = min(keep, se)
		}
		if applied >= keep {
			target = applied - keep
		}
		target = max(target, min(applied, n.ret.beyond(n.cfg.Now(), followerKeepBytes, 0)))
		slack = keep
	}
	if target < first || (target < first+slack && n.ret.bytesThrough(target) < compactBytes) {
		return nil
	}
	n.mu.RLock()
	conf := n.conf
	n.mu.RUnlock()
	// The store may stop short: entries whose statements the ledger files
	// have not yet synced stay (store/bodies.go).
	done, err := n.rlog.Compact(target, conf)
	if err != nil {
		return fmt.Errorf("replication: compact raft log: %w", err)
	}
	if done < first {
		return nil
	}
	n.ret.compacted(done)
	n.metrics.logBytes.Set(float64(n.ret.bytes()))
	return nil
}

// leaderCompactTarget is the highest applied index a leader may compact
// to: the lowest of what each follower still needs, where what a follower
// needs is cut off at the retention bounds, and of the snapshots in flight.
func (n *Node) leaderCompactTarget(applied uint64) uint64 {
	now := n.cfg.Now()
	bound := n.ret.beyond(now, n.cfg.LogRetentionBytes, n.cfg.LogRetention)
	if se := n.cfg.SnapshotEntries; se > 0 && applied > se {
		bound = max(bound, applied-se)
	}
	target := applied
	st := n.raft.Status()
	for id, pr := range st.Progress {
		if id != n.cfg.ID {
			target = min(target, max(pr.Match, bound))
		}
	}
	n.snapMu.Lock()
	defer n.snapMu.Unlock()
	for id, p := range n.snaps {
		pr, ok := st.Progress[id]
		switch {
		case !ok:
			delete(n.snaps, id)
		case p.done.IsZero():
			target = min(target, p.index)
		case pr.Match >= p.until || now.Sub(p.done) > n.cfg.LogRetention:
			// Caught up with what was written during the transfer, or
			// never acknowledged the image (it died installing it).
			delete(n.snaps, id)
		default:
			target = min(target, max(p.index, pr.Match))
		}
	}
	return target
}

// pinSnapshots records the snapshots among msgs, about to be sent, so that
// compaction keeps the log from their index (see snapshotPin).
func (n *Node) pinSnapshots(msgs []*pb.Message) {
	for _, m := range msgs {
		if m.GetType() != pb.MsgSnap {
			continue
		}
		n.snapMu.Lock()
		n.snaps[m.GetTo()] = &snapshotPin{index: m.GetSnapshot().GetMetadata().GetIndex()}
		n.snapMu.Unlock()
	}
}

// ReportUnreachable passes the transport's report to raft.
func (n *Node) ReportUnreachable(id uint64) { n.raft.ReportUnreachable(id) }

// ReportSnapshot passes the outcome of a snapshot transfer to raft and
// updates the transfer's pin: a failed transfer releases it, a delivered
// one holds the log until the follower has caught up (see snapshotPin).
func (n *Node) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	n.snapMu.Lock()
	if p, ok := n.snaps[id]; ok {
		if status == raft.SnapshotFinish {
			p.done = n.cfg.Now()
			p.until, _ = n.rlog.LastIndex()
		} else {
			delete(n.snaps, id)
		}
	}
	n.snapMu.Unlock()
	if status == raft.SnapshotFinish {
		n.metrics.snapshotsSent.Inc()
	}
	n.raft.ReportSnapshot(id, status)
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

// RecordedURL returns the base URL the ledger records for peer id, which
// its clients reach it at too; a local dial override (PeerURL) may be an
// address only this node can use.
func (n *Node) RecordedURL(id uint64) (string, bool) { return n.cfg.Peers.URL(id) }
