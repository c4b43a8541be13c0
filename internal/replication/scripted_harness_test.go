package replication

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/replication/replicationtest"
	"github.com/charterlog/charter/internal/store"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// This file is a harness for scripted networks, in the manner of etcd raft's
// interaction tests (rafttest): real Nodes, each running its real Ready loop
// (Run, handleReady) over a real Pebble store and replicationtest.RecordSM, but
//
//   - raft is a RawNode behind raft.Node's interface (stepRaft), whose
//     Readys the network hands to the node's Run loop one at a time, waiting
//     for its Advance: a step ends when the loop has handled it;
//   - time is raft's ticks, sent on the node's Config.tick;
//   - the transport (memTransport) only queues messages; the test delivers
//     them, in the order they were sent, or drops them across a partition.
//
// Nothing waits on the wall clock (the retention clock, Config.Now, stands
// still) and nothing runs unless the test says, so
// a script's outcome does not depend on scheduling. The one randomness left
// is raft's randomized election timeout, which scripts make irrelevant by
// ticking only the node that is to campaign.
//
// The harness checks the Ready loop's contract on every step (etcd-io/raft
// doc.go, "Usage"): a message leaves only after the state it promises is
// durable (checkSend), and an entry is applied only once a quorum of the
// voters has persisted it (checkApply).

// stepRaft is raft.Node over a RawNode that the network drives.
type stepRaft struct {
	mu sync.Mutex
	rn *raft.RawNode

	readyc   chan raft.Ready
	advanced chan struct{}
	ticked   chan struct{}
}

var _ raft.Node = (*stepRaft)(nil)

func newStepRaft(rc *raft.Config, peers []raft.Peer) (*stepRaft, error) {
	rn, err := raft.NewRawNode(rc)
	if err != nil {
		return nil, err
	}
	if len(peers) > 0 {
		if err := rn.Bootstrap(peers); err != nil {
			return nil, err
		}
	}
	return &stepRaft{rn: rn, readyc: make(chan raft.Ready), advanced: make(chan struct{}), ticked: make(chan struct{})}, nil
}

// next returns the Ready raft has, if any, as accepted.
func (s *stepRaft) next() (raft.Ready, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.rn.HasReady() {
		return raft.Ready{}, false
	}
	return s.rn.Ready(), true
}

// Tick reports to the network that the Run loop has ticked.
func (s *stepRaft) Tick() {
	s.mu.Lock()
	s.rn.Tick()
	s.mu.Unlock()
	s.ticked <- struct{}{}
}

func (s *stepRaft) Campaign(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rn.Campaign()
}

func (s *stepRaft) Propose(_ context.Context, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rn.Propose(data)
}

func (s *stepRaft) ProposeConfChange(_ context.Context, cc pb.ConfChangeI) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rn.ProposeConfChange(cc)
}

// Step ignores what raft.Node ignores: local messages from the network and
// answers from nodes not in the configuration.
func (s *stepRaft) Step(_ context.Context, m *pb.Message) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.rn.Step(m)
	if errors.Is(err, raft.ErrStepLocalMsg) || errors.Is(err, raft.ErrStepPeerNotFound) {
		return nil
	}
	return err
}

func (s *stepRaft) Ready() <-chan raft.Ready { return s.readyc }

// Advance reports to the network that the Run loop is done with its Ready.
func (s *stepRaft) Advance() {
	s.mu.Lock()
	s.rn.Advance(raft.Ready{})
	s.mu.Unlock()
	s.advanced <- struct{}{}
}

func (s *stepRaft) ApplyConfChange(cc pb.ConfChangeI) *pb.ConfState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rn.ApplyConfChange(cc)
}

func (s *stepRaft) TransferLeadership(_ context.Context, _, transferee uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rn.TransferLeader(transferee)
}

func (s *stepRaft) ForgetLeader(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rn.ForgetLeader()
}

func (s *stepRaft) ReadIndex(_ context.Context, rctx []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rn.ReadIndex(rctx)
	return nil
}

func (s *stepRaft) Status() raft.Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rn.Status()
}

func (s *stepRaft) ReportUnreachable(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rn.ReportUnreachable(id)
}

func (s *stepRaft) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rn.ReportSnapshot(id, status)
}

func (s *stepRaft) Stop() {}

// memNet is a scripted network.
type memNet struct {
	t     *testing.T
	dir   string
	cfg   Config // template: ID, Bootstrap, Peers, SnapshotDir are per node
	nodes map[uint64]*memNode

	mu    sync.Mutex // the queue is filled by the nodes' Run loops
	queue []*pb.Message
	// cut holds the links that drop messages, both ways.
	cut map[[2]uint64]bool
	// snapshots lists the images delivered.
	snapshots []deliveredSnapshot
	// appendsBeforeWrite counts entries sent in appends before their
	// sender had written them (allowed; checkSend).
	appendsBeforeWrite int
}

type memNode struct {
	id     uint64
	st     *store.Store
	n      *Node
	sm     *checkedSM
	raft   *stepRaft
	tick   chan time.Time
	cancel context.CancelFunc
	done   chan error
}

// deliveredSnapshot is an image a follower was sent: the ledger prefix it
// is relative to and its raft index.
type deliveredSnapshot struct {
	from, to uint64
	base     store.Base
	index    uint64
}

func peerURL(id uint64) string { return fmt.Sprintf("https://node%d.test", id) }

// newMemNet starts voters 1..n of a new network.
func newMemNet(t *testing.T, n int, cfg Config) *memNet {
	t.Helper()
	net := &memNet{t: t, dir: t.TempDir(), cfg: cfg, nodes: map[uint64]*memNode{}, cut: map[[2]uint64]bool{}}
	boot := map[uint64]string{}
	for id := uint64(1); id <= uint64(n); id++ {
		boot[id] = peerURL(id)
	}
	t.Cleanup(func() {
		for _, id := range net.ids() {
			net.stop(id)
		}
	})
	for id := uint64(1); id <= uint64(n); id++ {
		net.start(id, boot)
	}
	return net
}

// start starts node id over its store (empty the first time); boot lists
// a new network's voters, nil for a joiner or a restart.
func (net *memNet) start(id uint64, boot map[uint64]string) {
	t := net.t
	t.Helper()
	dir := filepath.Join(net.dir, fmt.Sprint(id))
	st, err := store.Open(filepath.Join(dir, "store"), nil)
	if err != nil {
		t.Fatal(err)
	}
	nd := &memNode{id: id, st: st, tick: make(chan time.Time), done: make(chan error, 1)}
	cfg := net.cfg
	cfg.ID = id
	cfg.Bootstrap = boot
	cfg.Peers = NewPeerTable(boot)
	cfg.SnapshotDir = filepath.Join(dir, "snapshots")
	cfg.tick = nd.tick
	// Retention ages stand still: only ticks move time here.
	cfg.Now = func() time.Time { return time.Unix(0, 0) }
	cfg.startRaft = func(rc *raft.Config, peers []raft.Peer) raft.Node {
		nd.raft, err = newStepRaft(rc, peers)
		if err != nil {
			t.Fatal(err)
		}
		return nd.raft
	}
	sm := &checkedSM{RecordSM: replicationtest.NewRecordSM(st), net: net, id: id}
	if err := sm.RecordSM.Restore(); err != nil {
		t.Fatal(err)
	}
	nd.sm = sm
	nd.n, err = Start(cfg, st, sm, memTransport{net: net, from: id}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	nd.cancel = cancel
	go func() { nd.done <- nd.n.Run(ctx) }()
	net.nodes[id] = nd
}

// stop stops node id and closes its store; messages to it are dropped.
func (net *memNet) stop(id uint64) {
	nd := net.nodes[id]
	nd.cancel()
	if err := <-nd.done; err != nil {
		net.t.Errorf("node %d: %v", id, err)
	}
	if err := nd.st.Close(); err != nil {
		net.t.Errorf("node %d: closing its store: %v", id, err)
	}
	delete(net.nodes, id)
}

func (net *memNet) ids() []uint64 {
	var ids []uint64
	for id := range net.nodes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// wait waits for the Run loop of nd to answer on ch, or fails if it ended.
func (net *memNet) wait(nd *memNode, ch <-chan struct{}) {
	net.t.Helper()
	select {
	case <-ch:
	case err := <-nd.done:
		nd.done <- err
		net.t.Fatalf("node %d: the Ready loop ended: %v", nd.id, err)
	}
}

// pump hands node id's next Ready, if raft has one, to its Run loop and
// waits until the loop has advanced.
func (net *memNet) pump(id uint64) bool {
	net.t.Helper()
	nd := net.nodes[id]
	rd, ok := nd.raft.next()
	if !ok {
		return false
	}
	select {
	case nd.raft.readyc <- rd:
	case err := <-nd.done:
		nd.done <- err
		net.t.Fatalf("node %d: the Ready loop ended: %v", id, err)
	}
	net.wait(nd, nd.raft.advanced)
	return true
}

// tick advances node id's clock by k ticks through its Run loop, handling
// each tick's Readys before the next (as a node that keeps up does).
func (net *memNet) tick(id uint64, k int) {
	net.t.Helper()
	nd := net.nodes[id]
	for range k {
		select {
		case nd.tick <- time.Time{}:
		case err := <-nd.done:
			nd.done <- err
			net.t.Fatalf("node %d: the Ready loop ended: %v", id, err)
		}
		net.wait(nd, nd.raft.ticked)
		for net.pump(id) {
		}
	}
}

// campaign ticks node id until it starts an election (at most twice the
// election timeout, raft's randomized bound), then runs the network to a
// standstill. Only id is ticked, so only id campaigns.
func (net *memNet) campaign(id uint64) {
	net.t.Helper()
	for k := 0; net.nodes[id].raft.Status().RaftState == raft.StateFollower; k++ {
		if election, _ := net.ticks(); k == 2*election {
			net.t.Fatalf("node %d did not campaign within %d ticks", id, k)
		}
		net.tick(id, 1)
	}
	net.stabilize()
}

// ticks returns the election and heartbeat intervals, in ticks.
func (net *memNet) ticks() (election, heartbeat int) {
	c := net.cfg
	c.ID = 1
	if err := c.Validate(); err != nil {
		net.t.Fatal(err)
	}
	return c.ElectionTicks, c.HeartbeatTicks
}

// heartbeat ticks leader id once per heartbeat interval and stabilizes:
// raft resends what was lost in answer to heartbeats.
func (net *memNet) heartbeat(id uint64) {
	net.t.Helper()
	_, heartbeat := net.ticks()
	net.tick(id, heartbeat)
	net.stabilize()
}

// stabilize handles every Ready and delivers every message, node by node in
// id order and messages in the order sent, until nothing is left to do.
func (net *memNet) stabilize() {
	net.t.Helper()
	for round := 0; ; round++ {
		if round == 1000 {
			net.t.Fatal("the network did not come to a standstill in 1000 rounds")
		}
		busy := false
		for _, id := range net.ids() {
			for net.pump(id) {
				busy = true
			}
		}
		if net.deliver(func(*pb.Message) bool { return true }) > 0 {
			busy = true
		}
		if !busy {
			return
		}
	}
}

// queued returns the messages sent and not yet delivered or dropped.
func (net *memNet) queued() []*pb.Message {
	net.mu.Lock()
	defer net.mu.Unlock()
	return slices.Clone(net.queue)
}

// deliver delivers (or drops, across a cut or to a stopped node) the queued
// messages that match, in the order sent, and returns how many it took.
func (net *memNet) deliver(match func(*pb.Message) bool) int {
	net.t.Helper()
	net.mu.Lock()
	var take, keep []*pb.Message
	for _, m := range net.queue {
		if match(m) {
			take = append(take, m)
		} else {
			keep = append(keep, m)
		}
	}
	net.queue = keep
	net.mu.Unlock()
	for _, m := range take {
		net.deliverOne(m)
	}
	return len(take)
}

func (net *memNet) deliverOne(m *pb.Message) {
	t := net.t
	t.Helper()
	from, to := m.GetFrom(), m.GetTo()
	src, srcUp := net.nodes[from]
	dst, dstUp := net.nodes[to]
	switch {
	case !srcUp:
		return
	case !dstUp || net.cut[[2]uint64{from, to}]:
		if m.GetType() == pb.MsgSnap {
			src.n.ReportSnapshot(to, raft.SnapshotFailure)
		}
		return
	}
	// Who is a voter is the sender's own view (a joiner does not know yet).
	src.n.mu.RLock()
	sender := Sender{ID: from, Voter: slices.Contains(src.n.conf.GetVoters(), from)}
	src.n.mu.RUnlock()
	if m.GetType() == pb.MsgSnap {
		net.deliverSnapshot(src, dst, sender, m)
		return
	}
	body, err := EncodeMessages([]*pb.Message{m})
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.n.ReceiveRaft(context.Background(), body, "", sender); err != nil {
		t.Fatalf("node %d refused %v from %d: %v", to, m.GetType(), from, err)
	}
}

// deliverSnapshot takes the path the HTTP transport takes: it asks the
// follower for its ledger base, opens an image relative to it on the
// leader (at the leader's applied index, which the message is rewritten
// to), hands it to the follower's ReceiveSnapshot, and reports the outcome
// to the leader.
func (net *memNet) deliverSnapshot(src, dst *memNode, sender Sender, m *pb.Message) {
	t := net.t
	t.Helper()
	var base store.Base
	if b, err := dst.n.SnapshotBase(sender); err != nil {
		t.Fatalf("node %d: its ledger base: %v", dst.id, err)
	} else if err := base.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	var source SnapshotSource = src.st
	meta, used, rd, err := source.OpenSnapshot(base)
	if err != nil {
		t.Fatalf("node %d: opening a snapshot: %v", src.id, err)
	}
	defer rd.Close()
	hdr := proto.Clone(m).(*pb.Message)
	hdr.Snapshot = &pb.Snapshot{Metadata: meta}
	raw, err := proto.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	status := raft.SnapshotFinish
	if err := dst.n.ReceiveSnapshot(context.Background(), raw, "", rd, sender); err != nil {
		t.Errorf("node %d refused a snapshot from %d: %v", dst.id, src.id, err)
		status = raft.SnapshotFailure
	}
	net.snapshots = append(net.snapshots, deliveredSnapshot{from: src.id, to: dst.id, base: used, index: meta.GetIndex()})
	src.n.ReportSnapshot(dst.id, status)
}

// partition cuts every link between a node of side and one not in it.
func (net *memNet) partition(side ...uint64) {
	for a := range net.nodes {
		for b := range net.nodes {
			if slices.Contains(side, a) != slices.Contains(side, b) {
				net.cut[[2]uint64{a, b}] = true
			}
		}
	}
}

// heal restores every link.
func (net *memNet) heal() { clear(net.cut) }

// propose proposes data through node id, which must lead.
func (net *memNet) propose(id uint64, data string) {
	net.t.Helper()
	if err := net.nodes[id].n.Propose(context.Background(), []byte(data)); err != nil {
		net.t.Fatalf("node %d: proposing %q: %v", id, data, err)
	}
}

// ledger returns node id's ledger base (its size and tree hash).
func (net *memNet) ledger(id uint64) store.Base {
	net.t.Helper()
	b, err := net.nodes[id].st.LedgerBase()
	if err != nil {
		net.t.Fatal(err)
	}
	return b
}

// persisted returns node id's durable raft position: its hard state and
// last log index.
func (net *memNet) persisted(id uint64) (*pb.HardState, uint64) {
	rlog := net.nodes[id].n.rlog
	last, err := rlog.LastIndex()
	if err != nil {
		net.t.Fatal(err)
	}
	return rlog.HardState(), last
}

// holds reports whether node id's durable log holds an entry of term at
// index, or has applied (and so may have compacted) index.
func (net *memNet) holds(id, index, term uint64) bool {
	nd := net.nodes[id]
	if nd.n.Applied() >= index {
		return true
	}
	got, err := nd.n.rlog.Term(index)
	return err == nil && got == term
}

// memTransport queues what a node sends, after checking that it may leave.
type memTransport struct {
	net  *memNet
	from uint64
}

func (tr memTransport) Send(msgs []*pb.Message) {
	tr.net.checkSend(tr.from, msgs)
	tr.net.mu.Lock()
	defer tr.net.mu.Unlock()
	for _, m := range msgs {
		tr.net.queue = append(tr.net.queue, proto.Clone(m).(*pb.Message))
	}
}

// checkSend checks step 2 of the Ready loop: a message that vouches for
// the sender's disk leaves only once what it vouches for is durable. An
// acknowledgement acknowledges persisted entries, in a persisted term; a
// granted vote is recorded. Appends, heartbeats and vote requests may leave
// before the Ready's write (raft's rule for asynchronous storage, and the
// raft thesis 10.2.1 for a leader's appends): raft counts a node's own
// entries and its own vote only once written, so nothing is decided on
// what a crash could still take back. Pre-votes decide nothing.
func (net *memNet) checkSend(from uint64, msgs []*pb.Message) {
	t := net.t
	hs, last := net.persisted(from)
	for _, m := range msgs {
		vouches := m.GetType() == pb.MsgAppResp || m.GetType() == pb.MsgVoteResp
		if vouches && m.GetTerm() > hs.GetTerm() {
			t.Errorf("node %d sent %v of term %d with term %d persisted", from, m.GetType(), m.GetTerm(), hs.GetTerm())
		}
		switch m.GetType() {
		case pb.MsgApp:
			for _, e := range m.GetEntries() {
				if !net.holds(from, e.GetIndex(), e.GetTerm()) {
					net.mu.Lock()
					net.appendsBeforeWrite++
					net.mu.Unlock()
				}
			}
		case pb.MsgAppResp:
			if !m.GetReject() && m.GetIndex() > last {
				t.Errorf("node %d acknowledged index %d with %d persisted", from, m.GetIndex(), last)
			}
		case pb.MsgVoteResp:
			if !m.GetReject() && (hs.GetVote() != m.GetTo() || hs.GetTerm() != m.GetTerm()) {
				t.Errorf("node %d granted its term %d vote to %d with %v persisted", from, m.GetTerm(), m.GetTo(), hs)
			}
		}
	}
}

// checkedSM is replicationtest.RecordSM checking step 3 of the Ready loop: an entry is
// applied only once committed, that is, persisted by a quorum of the
// voters (those of the configuration before the batch; a configuration
// change counts from its own application on), and with this node's own
// commit index durable.
type checkedSM struct {
	*replicationtest.RecordSM
	net *memNet
	id  uint64
	// restores counts the restores after a snapshot install.
	restores int
}

// Restore checks that the node says it is installing while its state
// machine is reloaded from a store the install rewrote in batches: the
// edge answers 503 meanwhile instead of reading half-written maps.
func (m *checkedSM) Restore() error {
	if nd := m.net.nodes[m.id]; nd == nil || !nd.n.Installing() {
		m.net.t.Errorf("node %d restored its state machine while not marked as installing", m.id)
	}
	m.restores++
	return m.RecordSM.Restore()
}

func (m *checkedSM) Apply(entries []ledger.Entry, also func(*store.Batch) error) error {
	net := m.net
	hs, _ := net.persisted(m.id)
	_, cs, err := net.nodes[m.id].n.rlog.InitialState()
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Index > hs.GetCommit() {
			net.t.Errorf("node %d applied %d with commit %d persisted", m.id, e.Index, hs.GetCommit())
		}
		voters := cs.GetVoters()
		if len(voters) == 0 {
			continue // the bootstrap entries, committed by fiat
		}
		have := 0
		for _, v := range voters {
			if _, up := net.nodes[v]; up && net.holds(v, e.Index, e.Term) {
				have++
			}
		}
		if have <= len(voters)/2 {
			net.t.Errorf("node %d applied %d/%d, persisted by %d of voters %v", m.id, e.Index, e.Term, have, voters)
		}
	}
	return m.RecordSM.Apply(entries, also)
}
