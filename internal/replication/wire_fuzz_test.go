package replication

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// The fuzz targets of the raft wire (POST /node/raft batches and the
// snapshot header of POST /node/raft/snapshot), seeded with messages a real
// raft group sent: realMessages runs go.etcd.io/raft, the library the nodes
// run, in memory, and keeps what its nodes said to each other.

// memRaft is one in-memory raft node.
type memRaft struct {
	rn *raft.RawNode
	st *raft.MemoryStorage
}

func newMemRaft(tb testing.TB, id uint64, voters []uint64) *memRaft {
	tb.Helper()
	st := raft.NewMemoryStorage()
	if len(voters) > 0 {
		if err := st.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{
			Index: proto.Uint64(1), Term: proto.Uint64(1), ConfState: &pb.ConfState{Voters: voters}}}); err != nil {
			tb.Fatal(err)
		}
	}
	// The options the nodes use (replication.Start), small ticks.
	rn, err := raft.NewRawNode(&raft.Config{
		ID: id, ElectionTick: 10, HeartbeatTick: 1, Storage: st,
		MaxSizePerMsg: 4 << 20, MaxInflightMsgs: 256, MaxUncommittedEntriesSize: 256 << 20,
		CheckQuorum: true, PreVote: true, DisableProposalForwarding: true,
		Logger: discardLogger{},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return &memRaft{rn: rn, st: st}
}

type discardLogger struct{}

func (discardLogger) Debug(...any)            {}
func (discardLogger) Debugf(string, ...any)   {}
func (discardLogger) Error(...any)            {}
func (discardLogger) Errorf(string, ...any)   {}
func (discardLogger) Info(...any)             {}
func (discardLogger) Infof(string, ...any)    {}
func (discardLogger) Warning(...any)          {}
func (discardLogger) Warningf(string, ...any) {}
func (discardLogger) Fatal(v ...any)          { panic(v) }
func (discardLogger) Fatalf(f string, v ...any) {
	panic(f)
}
func (discardLogger) Panic(v ...any)            { panic(v) }
func (discardLogger) Panicf(f string, v ...any) { panic(f) }

// memCluster delivers every message its nodes send, in order, and keeps
// a copy of each.
type memCluster struct {
	tb    testing.TB
	nodes map[uint64]*memRaft
	sent  []*pb.Message
}

// settle runs the Ready loop of every node (persist, send, apply, as
// replication.Node does) until no node has anything left to do.
func (c *memCluster) settle() {
	c.tb.Helper()
	for round := 0; ; round++ {
		if round > 1000 {
			c.tb.Fatal("the in-memory raft group does not settle")
		}
		busy := false
		for id := uint64(1); id <= uint64(len(c.nodes)); id++ {
			n := c.nodes[id]
			if !n.rn.HasReady() {
				continue
			}
			busy = true
			rd := n.rn.Ready()
			if !raft.IsEmptySnap(rd.Snapshot) {
				if err := n.st.ApplySnapshot(rd.Snapshot); err != nil {
					c.tb.Fatal(err)
				}
			}
			if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
				if err := n.st.SetHardState(rd.HardState); err != nil {
					c.tb.Fatal(err)
				}
			}
			if err := n.st.Append(rd.Entries); err != nil {
				c.tb.Fatal(err)
			}
			for _, m := range rd.Messages {
				c.sent = append(c.sent, proto.Clone(m).(*pb.Message))
				if to := c.nodes[m.GetTo()]; to != nil {
					if err := to.rn.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
						c.tb.Fatal(err)
					}
				}
			}
			for _, e := range rd.CommittedEntries {
				if e.GetType() == pb.EntryConfChange || e.GetType() == pb.EntryConfChangeV2 {
					cc, err := decodeConfChange(e)
					if err != nil {
						c.tb.Fatal(err)
					}
					n.rn.ApplyConfChange(cc)
				}
			}
			n.rn.Advance(rd)
		}
		if !busy {
			return
		}
	}
}

// realMessages runs a three-node raft group in memory: an election (with
// pre-vote), proposals, heartbeats, then the leader compacts its log and a
// fourth node joins, which only a snapshot can bring up to date. It
// returns every message the nodes sent, in the order sent.
func realMessages(tb testing.TB) []*pb.Message {
	tb.Helper()
	c := &memCluster{tb: tb, nodes: map[uint64]*memRaft{}}
	for id := uint64(1); id <= 3; id++ {
		c.nodes[id] = newMemRaft(tb, id, []uint64{1, 2, 3})
	}
	leader := c.nodes[1]
	if err := leader.rn.Campaign(); err != nil {
		tb.Fatal(err)
	}
	c.settle()
	if leader.rn.Status().RaftState != raft.StateLeader {
		tb.Fatalf("node 1 is %v after its campaign", leader.rn.Status().RaftState)
	}
	for i := 0; i < 3; i++ {
		if err := leader.rn.Propose(bytes.Repeat([]byte{byte('a' + i)}, 40+i)); err != nil {
			tb.Fatal(err)
		}
	}
	c.settle()
	leader.rn.Tick() // HeartbeatTick 1: one tick, one round of heartbeats
	c.settle()

	// Compact the leader's log behind a snapshot, then add node 4.
	applied := leader.rn.Status().Applied
	if _, err := leader.st.CreateSnapshot(applied, &pb.ConfState{Voters: []uint64{1, 2, 3}}, []byte("snapshot image")); err != nil {
		tb.Fatal(err)
	}
	if err := leader.st.Compact(applied); err != nil {
		tb.Fatal(err)
	}
	c.nodes[4] = newMemRaft(tb, 4, nil)
	if err := leader.rn.ProposeConfChange(&pb.ConfChange{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(4)}); err != nil {
		tb.Fatal(err)
	}
	c.settle()
	leader.rn.Tick()
	c.settle()
	return c.sent
}

// snapshotHeader is the Charter-Raft-Message header the transport sends
// with a snapshot (internal/peer/transport.go, sendSnapshot): the MsgSnap with its
// snapshot's metadata only, protobuf, standard base64.
func snapshotHeader(tb testing.TB, m *pb.Message) string {
	tb.Helper()
	m = proto.Clone(m).(*pb.Message)
	m.Snapshot = &pb.Snapshot{Metadata: m.GetSnapshot().GetMetadata()}
	b, err := proto.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestRealMessages checks the seeds: the group sent every kind the fuzz
// targets are meant to start from, and each decodes at its recipient (a
// MsgSnap through its header).
func TestRealMessages(t *testing.T) {
	sent := realMessages(t)
	seen := map[pb.MessageType]int{}
	for _, m := range sent {
		seen[m.GetType()]++
		if m.GetType() == pb.MsgSnap {
			if _, err := decodeSnapshotHeader(snapshotHeader(t, m), m.GetTo()); err != nil {
				t.Errorf("a real snapshot header: %v", err)
			}
			continue
		}
		b, err := EncodeMessages([]*pb.Message{m})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeMessages(b, m.GetTo()); err != nil {
			t.Errorf("a real %v: %v", m.GetType(), err)
		}
	}
	t.Logf("the group sent %v", seen)
	for _, typ := range []pb.MessageType{pb.MsgPreVote, pb.MsgPreVoteResp, pb.MsgVote, pb.MsgVoteResp,
		pb.MsgApp, pb.MsgAppResp, pb.MsgHeartbeat, pb.MsgHeartbeatResp, pb.MsgSnap} {
		if seen[typ] == 0 {
			t.Errorf("the group sent no %v (sent %v)", typ, seen)
		}
	}
	withEntries := false
	for _, m := range sent {
		if m.GetType() == pb.MsgApp && len(m.GetEntries()) > 0 {
			withEntries = true
		}
	}
	if !withEntries {
		t.Error("no MsgApp carried entries")
	}
}

// TestDecodeMessagesBounds: a batch may hold MaxBatchMessages messages and
// no more; a message may be MaxMessageBytes and no more; a request may be
// MaxRequestBytes and no more.
func TestDecodeMessagesBounds(t *testing.T) {
	hb := msg(pb.MsgHeartbeat, 1, 2)
	hb.Entries = nil
	one, err := EncodeMessages([]*pb.Message{hb})
	if err != nil {
		t.Fatal(err)
	}
	full := bytes.Repeat(one, MaxBatchMessages)
	if ms, err := DecodeMessages(full, 2); err != nil || len(ms) != MaxBatchMessages {
		t.Fatalf("a batch of %d messages: %d, %v", MaxBatchMessages, len(ms), err)
	}
	if _, err := DecodeMessages(append(full, one...), 2); !errors.Is(err, ErrBadMessage) {
		t.Errorf("a batch of %d messages: %v, want ErrBadMessage", MaxBatchMessages+1, err)
	}

	// One MsgApp of exactly MaxMessageBytes, then one byte more.
	big := msg(pb.MsgApp, 1, 2)
	big.Entries[0].Data = nil
	base := proto.Size(big)
	big.Entries[0].Data = make([]byte, MaxMessageBytes-base-8) // the entry and data length prefixes grow
	for proto.Size(big) < MaxMessageBytes {
		big.Entries[0].Data = append(big.Entries[0].Data, 0)
	}
	if proto.Size(big) != MaxMessageBytes {
		t.Fatalf("could not build a message of %d bytes (got %d)", MaxMessageBytes, proto.Size(big))
	}
	b, err := EncodeMessages([]*pb.Message{big})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeMessages(b, 2); err != nil {
		t.Fatalf("a message of MaxMessageBytes: %v", err)
	}
	big.Entries[0].Data = append(big.Entries[0].Data, 0)
	if b, err = EncodeMessages([]*pb.Message{big}); err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeMessages(b, 2); !errors.Is(err, ErrBadMessage) {
		t.Errorf("a message of MaxMessageBytes+1: %v, want ErrBadMessage", err)
	}

	// A request over MaxRequestBytes is refused before it is parsed.
	if _, err := DecodeMessages(make([]byte, MaxRequestBytes+1), 2); !errors.Is(err, ErrBadMessage) {
		t.Errorf("a request of MaxRequestBytes+1: %v, want ErrBadMessage", err)
	}
}

// FuzzDecodeMessages: raft message batches arrive from peers; whatever the
// bytes and whichever node receives them, decoding never panics, and what
// it accepts is a batch within the bounds, every message addressed to the
// receiving node, from another node, of a type a peer may send; it is
// refused by any other node; and it re-encodes to a batch that decodes to
// the same messages and re-encodes to itself.
func FuzzDecodeMessages(f *testing.F) {
	byTo := map[uint64][]*pb.Message{}
	for _, m := range realMessages(f) {
		// Each message alone, as the peer it was for receives it.
		b, err := EncodeMessages([]*pb.Message{m})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, m.GetTo())
		if m.GetType() != pb.MsgSnap {
			byTo[m.GetTo()] = append(byTo[m.GetTo()], m)
		}
	}
	// Batches, as the transport sends them: one peer's queue at a time.
	for to, ms := range byTo {
		b, err := EncodeMessages(ms)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, to)
	}
	for _, ms := range [][]*pb.Message{
		{msg(pb.MsgApp, 1, 2)},
		{msg(pb.MsgHeartbeat, 1, 2), msg(pb.MsgVote, 3, 2), msg(pb.MsgAppResp, 3, 2)},
	} {
		b, err := EncodeMessages(ms)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint64(2))
	}
	f.Add([]byte{}, uint64(2))
	f.Add([]byte{0x00}, uint64(2))
	f.Fuzz(func(t *testing.T, b []byte, self uint64) {
		if self == 0 {
			return // raft has no node 0 (replication.Config.Validate)
		}
		ms, err := DecodeMessages(b, self)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v is not ErrBadMessage", err)
			}
			return
		}
		if len(b) > MaxRequestBytes || len(ms) > MaxBatchMessages {
			t.Fatalf("accepted %d messages in %d bytes", len(ms), len(b))
		}
		for _, m := range ms {
			if err := checkRemote(m, self); err != nil {
				t.Fatalf("accepted %v: %v", m, err)
			}
			if m.GetTo() != self || m.GetType() == pb.MsgSnap || m.GetType() == pb.MsgProp || raft.IsLocalMsg(m.GetType()) {
				t.Fatalf("accepted %v at node %d", m, self)
			}
		}
		if len(ms) > 0 {
			if _, err := DecodeMessages(b, self+1); err == nil {
				t.Fatalf("node %d accepted a batch for node %d", self+1, self)
			}
		}
		again, err := EncodeMessages(ms)
		if err != nil {
			t.Fatal(err)
		}
		ms2, err := DecodeMessages(again, self)
		if err != nil || len(ms2) != len(ms) {
			t.Fatalf("re-decode: %d messages, %v", len(ms2), err)
		}
		for i := range ms {
			if !proto.Equal(ms[i], ms2[i]) {
				t.Fatalf("message %d changed on re-encoding:\n%v\n%v", i, ms[i], ms2[i])
			}
		}
		if third, err := EncodeMessages(ms2); err != nil || !bytes.Equal(third, again) {
			t.Fatalf("re-encoding is not a fixed point: %v", err)
		}
	})
}

// FuzzDecodeSnapshotHeader: the snapshot header comes from a peer; whatever
// its text (asText) or the protobuf it encodes, decoding never panics, and
// what it accepts is a MsgSnap at a nonzero index, addressed to the
// receiving node from another, with no data; any other node refuses it;
// and it re-encodes to a header that decodes to the same message.
func FuzzDecodeSnapshotHeader(f *testing.F) {
	for _, m := range realMessages(f) {
		if m.GetType() == pb.MsgSnap {
			h := snapshotHeader(f, m)
			raw, err := base64.StdEncoding.DecodeString(h)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(raw, false, m.GetTo())
			f.Add([]byte(h), true, m.GetTo())
			// The whole message, data included, as a peer must not send it.
			whole, err := proto.Marshal(m)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(whole, false, m.GetTo())
		}
	}
	hb, err := proto.Marshal(msg(pb.MsgHeartbeat, 1, 2))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(hb, false, uint64(2))
	f.Add([]byte("!!"), true, uint64(2))
	f.Fuzz(func(t *testing.T, b []byte, asText bool, self uint64) {
		if self == 0 {
			return
		}
		h := string(b)
		if !asText {
			h = base64.StdEncoding.EncodeToString(b)
		}
		m, err := decodeSnapshotHeader(h, self)
		if err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v is not ErrBadMessage", err)
			}
			return
		}
		if m.GetType() != pb.MsgSnap || m.GetTo() != self || m.GetFrom() == 0 || m.GetFrom() == self ||
			m.GetSnapshot().GetMetadata().GetIndex() == 0 || len(m.GetSnapshot().GetData()) != 0 {
			t.Fatalf("accepted %v at node %d", m, self)
		}
		if _, err := decodeSnapshotHeader(h, self+1); err == nil {
			t.Fatalf("node %d accepted a snapshot for node %d", self+1, self)
		}
		raw, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeSnapshotHeader(base64.StdEncoding.EncodeToString(raw), self)
		if err != nil || !proto.Equal(m, m2) {
			t.Fatalf("re-decode: %v, %v", m2, err)
		}
	})
}
