package replication

import (
	"encoding/binary"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Wire format of POST /node/raft: a sequence of raft messages, each a
// uvarint length followed by that many bytes of protobuf (raftpb.Message).
// A peer's bytes are untrusted until decoded and checked here: bounded sizes,
// no local message types, addressed to this node.

// Limits on what a peer may send in one request. They are the wire
// format's: package peer bounds the bodies it reads by them, and batches
// no more than MaxBatchMessages/2 messages in a request.
const (
	MaxMessageBytes  = 16 << 20
	MaxRequestBytes  = 64 << 20
	MaxBatchMessages = 4096
)

// ErrBadMessage reports raft messages from a peer that do not decode or are
// not acceptable from the network.
var ErrBadMessage = errors.New("replication: bad raft message")

// EncodeMessages frames msgs for one request. The frame is sized first and
// each message marshalled into it in place: a leader's appends carry its
// newest entries (hundreds of KiB under load), and marshalling each into
// its own buffer and then appending that to a growing frame copied and
// allocated them about three times over.
func EncodeMessages(msgs []*pb.Message) ([]byte, error) {
	sizes := make([]int, len(msgs))
	total := 0
	for i, m := range msgs {
		sizes[i] = proto.Size(m)
		total += binary.MaxVarintLen64 + sizes[i]
	}
	out := make([]byte, 0, total)
	for i, m := range msgs {
		out = binary.AppendUvarint(out, uint64(sizes[i]))
		var err error
		// UseCachedSize: proto.Size above left each message's size in it.
		if out, err = (proto.MarshalOptions{UseCachedSize: true}).MarshalAppend(out, m); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DecodeMessages parses a request body from a peer into messages for node
// self. It rejects anything raft must only get from itself (local message
// types, such as MsgHup or storage acknowledgements), messages for another
// node, and snapshots (those come with their data on their own endpoint).
func DecodeMessages(b []byte, self uint64) ([]*pb.Message, error) {
	if len(b) > MaxRequestBytes {
		return nil, fmt.Errorf("%w: request of %d bytes exceeds %d", ErrBadMessage, len(b), MaxRequestBytes)
	}
	var msgs []*pb.Message
	for len(b) > 0 {
		n, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, fmt.Errorf("%w: bad length prefix", ErrBadMessage)
		}
		b = b[k:]
		if n > MaxMessageBytes || n > uint64(len(b)) {
			return nil, fmt.Errorf("%w: message of %d bytes with %d left", ErrBadMessage, n, len(b))
		}
		if len(msgs) == MaxBatchMessages {
			return nil, fmt.Errorf("%w: more than %d messages", ErrBadMessage, MaxBatchMessages)
		}
		m := &pb.Message{}
		if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(b[:n], m); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
		b = b[n:]
		if err := checkRemote(m, self); err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

func checkRemote(m *pb.Message, self uint64) error {
	switch {
	case m.GetTo() != self:
		return fmt.Errorf("%w: addressed to node %d, this is node %d", ErrBadMessage, m.GetTo(), self)
	case m.GetFrom() == 0 || m.GetFrom() == self:
		return fmt.Errorf("%w: from node %d", ErrBadMessage, m.GetFrom())
	case pb.MessageType_name[int32(m.GetType())] == "":
		// Protobuf decodes any int32 into the enum; raft.IsLocalMsg and
		// raft's Step index arrays by it, and panic on a negative one.
		return fmt.Errorf("%w: unknown message type %d", ErrBadMessage, int32(m.GetType()))
	case raft.IsLocalMsg(m.GetType()):
		return fmt.Errorf("%w: %v is a local message type", ErrBadMessage, m.GetType())
	case m.GetType() == pb.MsgSnap:
		return fmt.Errorf("%w: snapshots come on the snapshot endpoint, with their data", ErrBadMessage)
	case m.GetType() == pb.MsgProp:
		// Followers do not forward proposals (DisableProposalForwarding):
		// writes reach the leader over HTTP, where they are checked.
		return fmt.Errorf("%w: proposals are not accepted from peers", ErrBadMessage)
	}
	return nil
}
