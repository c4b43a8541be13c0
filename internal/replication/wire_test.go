package replication

import (
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func msg(t pb.MessageType, from, to uint64) *pb.Message {
	return &pb.Message{Type: t.Enum(), From: proto.Uint64(from), To: proto.Uint64(to), Term: proto.Uint64(3),
		Entries: []*pb.Entry{{Index: proto.Uint64(7), Term: proto.Uint64(3), Data: []byte("entry")}}}
}

func TestMessagesRoundTrip(t *testing.T) {
	in := []*pb.Message{msg(pb.MsgApp, 1, 2), msg(pb.MsgHeartbeat, 1, 2), msg(pb.MsgVote, 3, 2)}
	b, err := EncodeMessages(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeMessages(b, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d messages, want %d", len(out), len(in))
	}
	for i := range in {
		if !proto.Equal(in[i], out[i]) {
			t.Errorf("message %d: got %v, want %v", i, out[i], in[i])
		}
	}
}

func TestDecodeMessagesRejects(t *testing.T) {
	enc := func(ms ...*pb.Message) []byte {
		b, err := EncodeMessages(ms)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := enc(msg(pb.MsgApp, 1, 2))
	for name, b := range map[string][]byte{
		"for another node":     enc(msg(pb.MsgApp, 1, 3)),
		"from nobody":          enc(msg(pb.MsgApp, 0, 2)),
		"from itself":          enc(msg(pb.MsgApp, 2, 2)),
		"local MsgHup":         enc(msg(pb.MsgHup, 1, 2)),
		"local storage append": enc(msg(pb.MsgStorageAppend, 1, 2)),
		"proposal from a peer": enc(msg(pb.MsgProp, 1, 2)),
		"snapshot inline":      enc(msg(pb.MsgSnap, 1, 2)),
		"negative type":        enc(msg(pb.MessageType(-1912866833), 1, 2)),
		"unknown type":         enc(msg(pb.MessageType(1000), 1, 2)),
		"truncated":            good[:len(good)-1],
		"bad length prefix":    {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"length beyond body":   append([]byte{0x7f}, good[1:]...),
		"garbage protobuf":     {0x03, 0xff, 0xff, 0xff},
	} {
		if _, err := DecodeMessages(b, 2); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: err %v, want ErrBadMessage", name, err)
		}
	}
	// Every truncation of a valid batch is refused (never a partial batch).
	two := enc(msg(pb.MsgApp, 1, 2), msg(pb.MsgHeartbeat, 1, 2))
	for i := 1; i < len(two); i++ {
		if ms, err := DecodeMessages(two[:i], 2); err == nil && len(ms) == 2 {
			t.Fatalf("truncation at %d decoded both messages", i)
		}
	}
}

// decodeSnapshotHeader is what a node does with the Charter-Raft-Message
// header of a snapshot: package peer decodes the base64 and bounds it
// (peer.snapshotMessage, tested there), then replication decodes and
// checks the message. The tests here cover the two together.
func decodeSnapshotHeader(h string, self uint64) (*pb.Message, error) {
	raw, err := base64.StdEncoding.DecodeString(h)
	if err != nil || len(raw) == 0 || len(raw) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: malformed header", ErrBadMessage)
	}
	return decodeSnapshotMessage(raw, self)
}

func TestDecodeSnapshotHeader(t *testing.T) {
	m := &pb.Message{Type: pb.MsgSnap.Enum(), From: proto.Uint64(1), To: proto.Uint64(2),
		Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: proto.Uint64(9), Term: proto.Uint64(2), ConfState: &pb.ConfState{Voters: []uint64{1, 2}}}}}
	hdr := func(m *pb.Message) string {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	got, err := decodeSnapshotHeader(hdr(m), 2)
	if err != nil || !proto.Equal(got, m) {
		t.Fatalf("decode: %v, %v", got, err)
	}
	withData := proto.Clone(m).(*pb.Message)
	withData.Snapshot.Data = []byte("/etc/passwd")
	noIndex := proto.Clone(m).(*pb.Message)
	noIndex.Snapshot.Metadata.Index = proto.Uint64(0)
	for name, h := range map[string]string{
		"empty":            "",
		"not base64":       "!!",
		"not a snapshot":   hdr(msg(pb.MsgApp, 1, 2)),
		"for another node": hdr(func() *pb.Message { c := proto.Clone(m).(*pb.Message); c.To = proto.Uint64(3); return c }()),
		"data in header":   hdr(withData),
		"index zero":       hdr(noIndex),
	} {
		if _, err := decodeSnapshotHeader(h, 2); !errors.Is(err, ErrBadMessage) {
			t.Errorf("%s: err %v, want ErrBadMessage", name, err)
		}
	}
}

// BenchmarkEncodeMessages frames what a leader sends one follower under
// load: an append of 8 entries of 64 KiB (a few hundred statements) and
// two heartbeats.
func BenchmarkEncodeMessages(b *testing.B) {
	var ents []*pb.Entry
	for i := range 8 {
		ents = append(ents, &pb.Entry{Term: proto.Uint64(3), Index: proto.Uint64(uint64(100 + i)), Data: make([]byte, 64<<10)})
	}
	msgs := []*pb.Message{
		{Type: pb.MessageType_MsgApp.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Term: proto.Uint64(3), Entries: ents},
		{Type: pb.MessageType_MsgHeartbeat.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Term: proto.Uint64(3)},
		{Type: pb.MessageType_MsgHeartbeat.Enum(), To: proto.Uint64(2), From: proto.Uint64(1), Term: proto.Uint64(3)},
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeMessages(msgs); err != nil {
			b.Fatal(err)
		}
	}
}
