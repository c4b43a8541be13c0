package replication

import (
	"errors"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Every remote message type, by whether a learner or untrusted node may
// send it: what moves the log or leadership is a voter's alone.
func TestAuthorizeByRole(t *testing.T) {
	remote := []pb.MessageType{pb.MsgApp, pb.MsgAppResp, pb.MsgVote, pb.MsgVoteResp, pb.MsgHeartbeat, pb.MsgHeartbeatResp,
		pb.MsgTransferLeader, pb.MsgTimeoutNow, pb.MsgReadIndex, pb.MsgReadIndexResp, pb.MsgPreVote, pb.MsgPreVoteResp, pb.MsgForgetLeader}
	learnerMay := map[pb.MessageType]bool{pb.MsgAppResp: true, pb.MsgHeartbeatResp: true, pb.MsgVoteResp: true, pb.MsgPreVoteResp: true, pb.MsgReadIndex: true}
	for _, typ := range remote {
		m := msg(typ, 5, 1)
		if err := authorize([]*pb.Message{m}, Sender{ID: 5, Voter: true}); err != nil {
			t.Errorf("a voter's %v: %v", typ, err)
		}
		err := authorize([]*pb.Message{m}, Sender{ID: 5})
		if learnerMay[typ] != (err == nil) {
			t.Errorf("a non-voter's %v: err %v, want allowed %v", typ, err, learnerMay[typ])
		}
		if err != nil && !errors.Is(err, ErrForbidden) {
			t.Errorf("a non-voter's %v: %v is not ErrForbidden", typ, err)
		}
	}
}

// A batch is refused whole if any message claims another sender.
func TestAuthorizeFrom(t *testing.T) {
	batch := []*pb.Message{msg(pb.MsgHeartbeat, 5, 1), msg(pb.MsgApp, 6, 1)}
	if err := authorize(batch, Sender{ID: 5, Voter: true}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a voter speaking for node 6: %v", err)
	}
}

// Only the leader this node follows, or a voter of a later term, may send
// a snapshot.
func TestAuthorizeSnapshot(t *testing.T) {
	n := &Node{leader: 2, term: 7}
	snap := func(from, term uint64) *pb.Message {
		m := msg(pb.MsgSnap, from, 1)
		m.Term = &term
		return m
	}
	for _, tc := range []struct {
		name string
		m    *pb.Message
		from Sender
		ok   bool
	}{
		{"the leader", snap(2, 7), Sender{ID: 2, Voter: true}, true},
		{"a voter of a later term", snap(3, 8), Sender{ID: 3, Voter: true}, true},
		{"another voter in the leader's term", snap(3, 7), Sender{ID: 3, Voter: true}, false},
		{"a learner", snap(4, 9), Sender{ID: 4}, false},
		{"a voter speaking for the leader", snap(2, 7), Sender{ID: 3, Voter: true}, false},
	} {
		err := n.authorizeSnapshot(tc.m, tc.from)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrForbidden)) {
			t.Errorf("%s: %v, want allowed %v", tc.name, err, tc.ok)
		}
	}
}
