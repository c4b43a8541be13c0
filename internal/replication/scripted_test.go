package replication

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// The tests here are scripts over memNet (scripted_harness_test.go): three
// real nodes, every step taken by the test, the Ready loop's contract
// checked on each. Raft indexes: a new network's log starts with its three
// bootstrap configuration entries; each leader appends an empty entry when
// elected.

// bootstrapEntries is the raft index of the last bootstrap entry.
const bootstrapEntries = 3

// checkLeader checks that every node in ids follows lead in term.
func (net *memNet) checkLeader(lead, term uint64, ids ...uint64) {
	net.t.Helper()
	for _, id := range ids {
		st := net.nodes[id].raft.Status()
		if st.Lead != lead || st.GetTerm() != term {
			net.t.Errorf("node %d follows %d in term %d; want %d in term %d", id, st.Lead, st.GetTerm(), lead, term)
		}
		if got := net.nodes[id].n.LeaderID(); got != lead {
			net.t.Errorf("node %d's Node says %d leads; want %d", id, got, lead)
		}
	}
}

// checkConverged checks that the nodes in ids have applied index and hold
// one ledger, of size transactions.
func (net *memNet) checkConverged(index, size uint64, ids ...uint64) {
	net.t.Helper()
	want := net.ledger(ids[0])
	if want.Size != size {
		net.t.Errorf("node %d's ledger holds %d transactions; want %d", ids[0], want.Size, size)
	}
	for _, id := range ids {
		if got := net.nodes[id].n.Applied(); got != index {
			net.t.Errorf("node %d applied %d; want %d", id, got, index)
		}
		if got := net.ledger(id); got != want {
			net.t.Errorf("node %d's ledger is %d/%x; node %d's is %d/%x", id, got.Size, got.Root[:4], ids[0], want.Size, want.Root[:4])
		}
	}
}

// TestScriptedElection: in a new network, the one node whose clock runs
// campaigns and wins (pre-vote, then vote, in term 2), every node learns
// it, and the leader's empty entry commits everywhere.
func TestScriptedElection(t *testing.T) {
	net := newMemNet(t, 3, Config{})
	net.stabilize() // the bootstrap entries, applied without a leader
	net.checkConverged(bootstrapEntries, 0, 1, 2, 3)
	net.checkLeader(0, 1, 1, 2, 3)

	net.campaign(1)
	net.checkLeader(1, 2, 1, 2, 3)
	if ok, term := net.nodes[1].n.Leader(); !ok || term != 2 {
		t.Errorf("node 1: Leader() = %v, %d; want true, 2", ok, term)
	}
	for _, id := range []uint64{2, 3} {
		if hs, _ := net.persisted(id); hs.GetVote() != 1 {
			t.Errorf("node %d voted for %d in term 2; want 1", id, hs.GetVote())
		}
	}
	net.checkConverged(bootstrapEntries+1, 0, 1, 2, 3)
}

// TestScriptedReadyOrder walks one entry through the Ready loops step by
// step: the leader sends it and persists it; a follower persists it and
// acknowledges it, still not applying it; the leader applies it only when
// that acknowledgement makes a quorum; the followers apply it when the
// leader's next append tells them the commit index. (The harness checks
// the order on every step of every test; this one shows each step.)
func TestScriptedReadyOrder(t *testing.T) {
	net := newMemNet(t, 3, Config{})
	net.campaign(1)
	const elected = bootstrapEntries + 1
	net.propose(1, "statement")
	const index = elected + 1

	if !net.pump(1) {
		t.Fatal("node 1 had no Ready after a proposal")
	}
	// The leader sent the entry before writing it, so that its write
	// overlaps its followers' (it counts its own copy only once written).
	net.mu.Lock()
	early := net.appendsBeforeWrite
	net.mu.Unlock()
	if early == 0 {
		t.Error("the leader wrote the entry before sending it")
	}
	if _, last := net.persisted(1); last != index {
		t.Fatalf("the leader's persisted log ends at %d; want %d", last, index)
	}
	apps := 0
	for _, m := range net.queued() {
		if m.GetType() == pb.MsgApp && len(m.GetEntries()) == 1 && m.GetEntries()[0].GetIndex() == index {
			apps++
		}
	}
	if apps != 2 {
		t.Fatalf("the leader sent %d appends of entry %d; want 2: %v", apps, index, net.queued())
	}
	if got := net.nodes[1].n.Applied(); got != elected {
		t.Fatalf("the leader applied %d before any follower had the entry; want %d", got, elected)
	}

	to := func(id uint64) func(*pb.Message) bool {
		return func(m *pb.Message) bool { return m.GetTo() == id }
	}
	net.deliver(to(2))
	for net.pump(2) {
	}
	hs, last := net.persisted(2)
	if last != index || hs.GetCommit() != elected || net.nodes[2].n.Applied() != elected {
		t.Fatalf("node 2 after the append: last %d, commit %d, applied %d; want %d, %d, %d",
			last, hs.GetCommit(), net.nodes[2].n.Applied(), index, elected, elected)
	}
	q := net.queued()
	if !slices.ContainsFunc(q, func(m *pb.Message) bool {
		return m.GetFrom() == 2 && m.GetType() == pb.MsgAppResp && m.GetIndex() == index && !m.GetReject()
	}) {
		t.Fatalf("node 2 did not acknowledge %d: %v", index, q)
	}

	net.deliver(to(1))
	for net.pump(1) {
	}
	if hs, _ := net.persisted(1); hs.GetCommit() != index {
		t.Fatalf("the leader's commit is %d after a quorum acknowledged %d", hs.GetCommit(), index)
	}
	net.checkConverged(index, 1, 1)
	for _, id := range []uint64{2, 3} {
		if got := net.nodes[id].n.Applied(); got != elected {
			t.Errorf("node %d applied %d before it learnt the commit; want %d", id, got, elected)
		}
	}

	net.stabilize()
	net.checkConverged(index, 1, 1, 2, 3)
}

// TestScriptedPartition cuts the leader off from the two followers. Its
// proposal persists in its own log but never commits, and it steps down
// two election timeouts later (CheckQuorum: the first check still counts
// the followers it heard from before the cut). The majority elects a new
// leader and commits without it. Healed, the old leader follows the new
// one, its uncommitted entry is overwritten, and the three logs and ledgers
// are one.
func TestScriptedPartition(t *testing.T) {
	net := newMemNet(t, 3, Config{})
	net.campaign(1)
	net.propose(1, "before")
	net.stabilize()
	net.checkConverged(bootstrapEntries+2, 1, 1, 2, 3)
	committed := uint64(bootstrapEntries + 2)

	net.partition(1)
	net.propose(1, "lost")
	net.stabilize()
	hs, last := net.persisted(1)
	if last != committed+1 || hs.GetCommit() != committed {
		t.Fatalf("the cut-off leader: last %d, commit %d; want %d, %d", last, hs.GetCommit(), committed+1, committed)
	}
	net.checkConverged(committed, 1, 1, 2, 3)

	election, _ := net.ticks()
	net.tick(1, 2*election)
	net.stabilize()
	if st := net.nodes[1].raft.Status(); st.RaftState != raft.StateFollower || st.Lead != 0 {
		t.Fatalf("the cut-off leader is %v following %d after two election timeouts; want a follower of none", st.RaftState, st.Lead)
	}
	if ok, _ := net.nodes[1].n.Leader(); ok {
		t.Fatal("the cut-off leader's Node still says it leads")
	}
	if err := net.nodes[1].n.Propose(context.Background(), []byte("refused")); err == nil {
		t.Fatal("a node that stepped down took a proposal")
	}

	// Node 3 would refuse node 2 a pre-vote until its own election timeout
	// passed (CheckQuorum's lease). ForgetLeader leaves it where that
	// timeout would, without racing its randomized timeout against node 2's.
	if err := net.nodes[3].raft.ForgetLeader(context.Background()); err != nil {
		t.Fatal(err)
	}
	net.campaign(2)
	net.checkLeader(2, 3, 2, 3)
	net.propose(2, "after")
	net.stabilize()
	net.checkConverged(committed+2, 2, 2, 3)
	if got := net.ledger(1).Size; got != 1 {
		t.Fatalf("the cut-off node's ledger holds %d transactions; want 1", got)
	}

	net.heal()
	net.heartbeat(2)
	net.checkLeader(2, 3, 1, 2, 3)
	net.checkConverged(committed+2, 2, 1, 2, 3)
	for i := uint64(1); i <= committed+2; i++ {
		want, err := net.nodes[2].n.rlog.Term(i)
		if err != nil {
			continue // compacted on the leader
		}
		if got, err := net.nodes[1].n.rlog.Term(i); err == nil && got != want {
			t.Errorf("entry %d: term %d on node 1, %d on the leader", i, got, want)
		}
	}
	if got, _ := net.nodes[1].n.rlog.Term(committed + 1); got != 3 {
		t.Errorf("node 1's entry %d has term %d; want 3 (its term 2 entry overwritten)", committed+1, got)
	}
}

// checkRoles checks each node's configuration (raft's, as applied) and its
// record of the nodes (MapNodes).
func (net *memNet) checkRoles(voters, learners []uint64, removed []uint64, ids ...uint64) {
	net.t.Helper()
	for _, id := range ids {
		n := net.nodes[id].n
		n.mu.RLock()
		cs := n.conf
		n.mu.RUnlock()
		gotV, gotL := slices.Sorted(slices.Values(cs.GetVoters())), slices.Sorted(slices.Values(cs.GetLearners()))
		if !slices.Equal(gotV, voters) || !slices.Equal(gotL, learners) {
			net.t.Errorf("node %d: voters %v, learners %v; want %v, %v", id, gotV, gotL, voters, learners)
		}
		want := map[uint64]string{}
		for _, v := range voters {
			want[v] = RoleVoter
		}
		for _, l := range learners {
			want[l] = RoleLearner
		}
		for _, r := range removed {
			want[r] = RoleRemoved
		}
		nodes, err := n.Nodes()
		if err != nil {
			net.t.Fatal(err)
		}
		got := map[uint64]string{}
		for _, info := range nodes {
			got[info.ID] = info.Role
			if info.URL != peerURL(info.ID) {
				net.t.Errorf("node %d records node %d at %q", id, info.ID, info.URL)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			net.t.Errorf("node %d records roles %v; want %v", id, got, want)
		}
	}
}

// TestScriptedConfChange adds node 4 as a learner (it catches up from the
// leader's log, and does not count towards a quorum), promotes it to voter,
// then removes node 3: with node 3 stopped and node 4 cut off, nodes 1 and
// 2 are a quorum of the new configuration and commit.
func TestScriptedConfChange(t *testing.T) {
	ctx := context.Background()
	net := newMemNet(t, 3, Config{})
	net.campaign(1)
	net.propose(1, "one")
	net.stabilize()

	net.start(4, nil)
	if err := net.nodes[1].n.AddLearner(ctx, 4, peerURL(4)); err != nil {
		t.Fatal(err)
	}
	net.stabilize()
	net.heartbeat(1) // the leader sends a new node nothing until a heartbeat answers
	index := uint64(bootstrapEntries + 3)
	net.checkConverged(index, 1, 1, 2, 3, 4)
	net.checkRoles([]uint64{1, 2, 3}, []uint64{4}, nil, 1, 2, 3, 4)

	// A learner is no quorum: the leader and node 4 cannot commit.
	net.partition(1, 4)
	net.propose(1, "two")
	net.stabilize()
	if hs, _ := net.persisted(1); hs.GetCommit() != index {
		t.Fatalf("the leader committed %d with only a learner", hs.GetCommit())
	}
	net.heal()
	net.heartbeat(1)
	index++
	net.checkConverged(index, 2, 1, 2, 3, 4)

	if err := net.nodes[1].n.Promote(ctx, 4); err != nil {
		t.Fatal(err)
	}
	net.stabilize()
	index++
	net.checkConverged(index, 2, 1, 2, 3, 4)
	net.checkRoles([]uint64{1, 2, 3, 4}, nil, nil, 1, 2, 3, 4)

	if err := net.nodes[1].n.Remove(ctx, 3); err != nil {
		t.Fatal(err)
	}
	net.stabilize()
	index++
	net.checkConverged(index, 2, 1, 2, 4)
	net.checkRoles([]uint64{1, 2, 4}, nil, []uint64{3}, 1, 2, 4)

	net.stop(3)
	net.partition(4)
	net.propose(1, "three")
	net.stabilize()
	index++
	net.checkConverged(index, 3, 1, 2)
	net.heal()
	net.heartbeat(1)
	net.checkConverged(index, 3, 1, 2, 4)
}

// TestScriptedCompactByBytes writes a few large entries, far fewer than
// the entry counts that trigger a compaction: the leader compacts once the
// applied entries every follower holds pass compactBytes, and the
// followers once their log passes followerKeepBytes, so that under load
// (entries of hundreds of statements) the raft log stays a small part of
// Pebble's memtable.
func TestScriptedCompactByBytes(t *testing.T) {
	net := newMemNet(t, 3, Config{})
	net.campaign(1)
	big := strings.Repeat("x", 1<<20)
	const entries = 12
	for i := range entries {
		net.propose(1, fmt.Sprint(i, big))
		net.stabilize()
	}
	net.heartbeat(1)
	index := uint64(bootstrapEntries + 1 + entries)
	net.checkConverged(index, entries, 1, 2, 3)
	for id := uint64(1); id <= 3; id++ {
		first, _ := net.nodes[id].n.rlog.FirstIndex()
		kept := (index - first + 1) << 20
		if first <= bootstrapEntries+1 {
			t.Errorf("node %d kept its whole log (first index %d) of %d MiB entries", id, first, entries)
		}
		if id != 1 && kept > followerKeepBytes+compactBytes {
			t.Errorf("follower %d keeps %d entries of 1 MiB, beyond followerKeepBytes %d", id, index-first+1, followerKeepBytes)
		}
	}
}

// TestScriptedSnapshot cuts node 3 off after it holds one transaction,
// writes past SnapshotEntries so the leader compacts the entries node 3
// needs, and heals: the leader sends node 3 a snapshot, relative to the
// ledger prefix node 3 holds (a delta), node 3 installs it and then
// follows from the log.
func TestScriptedSnapshot(t *testing.T) {
	net := newMemNet(t, 3, Config{SnapshotEntries: 4})
	net.campaign(1)
	net.propose(1, "shared")
	net.stabilize()
	index := uint64(bootstrapEntries + 2)
	net.checkConverged(index, 1, 1, 2, 3)
	held := net.ledger(3)

	net.partition(3)
	const missed = 20
	for i := range missed {
		net.propose(1, fmt.Sprint("missed ", i))
		net.stabilize()
	}
	index += missed
	net.checkConverged(index, 1+missed, 1, 2)
	if first, _ := net.nodes[1].n.rlog.FirstIndex(); first <= bootstrapEntries+3 {
		t.Fatalf("the leader kept its log from %d: no snapshot is needed", first)
	}
	if len(net.snapshots) != 0 {
		t.Fatalf("snapshots sent across the cut: %+v", net.snapshots)
	}

	net.heal()
	net.heartbeat(1)
	if len(net.snapshots) != 1 {
		t.Fatalf("%d snapshots delivered; want 1: %+v", len(net.snapshots), net.snapshots)
	}
	s := net.snapshots[0]
	if s.from != 1 || s.to != 3 || s.base != held || s.index != index {
		t.Errorf("snapshot %+v; want from 1 to 3 at %d relative to node 3's ledger of %d", s, index, held.Size)
	}
	net.checkConverged(index, 1+missed, 1, 2, 3)
	if sm := net.nodes[3].sm; sm.restores != 1 || net.nodes[3].n.Installing() {
		t.Errorf("node 3 restored %d times, installing %v after; want once, and not installing", sm.restores, net.nodes[3].n.Installing())
	}
	if first, _ := net.nodes[3].n.rlog.FirstIndex(); first != index+1 {
		t.Errorf("node 3's log starts at %d after the snapshot at %d", first, index)
	}

	net.propose(1, "after")
	net.stabilize()
	net.checkConverged(index+1, 2+missed, 1, 2, 3)
	if len(net.snapshots) != 1 {
		t.Errorf("%d snapshots; node 3 should follow from the log after the first", len(net.snapshots))
	}
}
