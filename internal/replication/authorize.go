package replication

import (
	"errors"
	"fmt"

	pb "go.etcd.io/raft/v3/raftpb"
)

// ErrForbidden reports a raft message its authenticated sender may not send:
// another node's id in From, or a type its role does not allow. The edge
// answers 403.
var ErrForbidden = errors.New("replication: message not allowed from this peer")

// Sender is the authenticated origin of a peer request: the node its TLS
// key belongs to, as the ledger records it. The caller (the node's peer
// authorization) establishes it; replication only checks messages against
// it.
type Sender struct {
	// ID is the node's raft id.
	ID uint64
	// Voter is set for a trusted node that raft counts as a voter: it may
	// lead, so it may send anything a raft peer sends. Learners and nodes
	// the network has not trusted send only answers.
	Voter bool
}

// fromNonVoter are the raft messages a learner or an untrusted node may
// send: acknowledgements of what a leader sent it, answers to a vote it was
// asked for, and a request for the read index (a learner's linearizable
// read). Never appends, heartbeats, snapshots, votes, pre-votes, leadership
// transfers or read-index answers: those move the log or leadership.
var fromNonVoter = map[pb.MessageType]bool{
	pb.MsgAppResp:       true,
	pb.MsgHeartbeatResp: true,
	pb.MsgVoteResp:      true,
	pb.MsgPreVoteResp:   true,
	pb.MsgReadIndex:     true,
}

// authorize checks that every message is from's own and of a type its role
// may send.
func authorize(msgs []*pb.Message, from Sender) error {
	for _, m := range msgs {
		if m.GetFrom() != from.ID {
			return fmt.Errorf("%w: node %d sent a message as node %d", ErrForbidden, from.ID, m.GetFrom())
		}
		if !from.Voter && !fromNonVoter[m.GetType()] {
			return fmt.Errorf("%w: node %d is not a voter and may not send %v", ErrForbidden, from.ID, m.GetType())
		}
	}
	return nil
}

// authorizeSnapshot checks that a snapshot comes from the leader: the one
// this node follows, or a voter with a newer term (which raft is about to
// follow). Anyone else's image would be written to disk for nothing, or
// worse, installed.
func (n *Node) authorizeSnapshot(m *pb.Message, from Sender) error {
	// Its own, and a voter's (MsgSnap is not an answer a non-voter may send).
	if err := authorize([]*pb.Message{m}, from); err != nil {
		return err
	}
	n.mu.RLock()
	leader, term := n.leader, n.term
	n.mu.RUnlock()
	if leader != 0 && leader != from.ID && m.GetTerm() <= term {
		return fmt.Errorf("%w: node %d is not the leader (node %d leads term %d)", ErrForbidden, from.ID, leader, term)
	}
	return nil
}
