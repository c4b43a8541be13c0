package replication

import (
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/store"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestMembershipRefusesDuplicateKeys: a configuration change's context and
// a node's record are decoded under the CBOR policy: two URLs for one node
// are refused, not resolved by whichever the decoder kept.
func TestMembershipRefusesDuplicateKeys(t *testing.T) {
	ctx, err := encodePeerContext("https://a:1")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := decodePeerContext(ctx); err != nil || u != "https://a:1" {
		t.Fatalf("round trip: %q, %v", u, err)
	}
	// {1: "https://a:1", 1: "https://b:1"}
	dup := []byte{0xa2, 0x01, 0x6b}
	dup = append(dup, "https://a:1"...)
	dup = append(dup, 0x01, 0x6b)
	dup = append(dup, "https://b:1"...)
	if _, err := decodePeerContext(dup); err == nil || !strings.Contains(err.Error(), "duplicate map key") {
		t.Errorf("duplicate URL: %v", err)
	}
}

// TestRecordPeersKeepsURLInOneBatch: a learner added with its URL and
// promoted (no URL) in the same Apply call keeps its URL in MapNodes, as
// it does when the two are applied in separate calls. Raft may hand a node
// both in one Ready (a follower catching up does), so reading only the
// store made the nodes' MapNodes differ, and a restarted node knew no
// address for the peer.
func TestRecordPeersKeepsURLInOneBatch(t *testing.T) {
	n, st := recordingNode(t, Config{ID: 1, Peers: NewPeerTable(nil)})
	add, err := encodePeerContext("https://node2.test")
	if err != nil {
		t.Fatal(err)
	}
	b := st.NewBatch()
	written := map[uint64]NodeInfo{}
	if err := n.recordPeers(b, []*pb.ConfChangeSingle{{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(2)}}, add, written); err != nil {
		t.Fatal(err)
	}
	if err := n.recordPeers(b, []*pb.ConfChangeSingle{{Type: pb.ConfChangeAddNode.Enum(), NodeId: proto.Uint64(2)}}, nil, written); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	info, err := n.NodeInfo(2)
	if err != nil {
		t.Fatal(err)
	}
	if info.URL != "https://node2.test" || info.Role != RoleVoter {
		t.Fatalf("after add and promotion in one batch: %+v, want a voter at https://node2.test", info)
	}
}

// TestLoadPeersDialsRegisteredURL: a node recorded in MapNodes without a
// URL (an earlier build's first node) is dialled, after a restart, at the
// URL it registered with; one recorded with a URL is dialled there, and a
// removed one not at all.
func TestLoadPeersDialsRegisteredURL(t *testing.T) {
	registered := map[uint64]string{1: "https://first.test:8443", 2: "https://registered2.test", 4: "https://gone.test"}
	n, st := recordingNode(t, Config{ID: 3, Peers: NewPeerTable(nil), RegisteredURL: func(id uint64) string { return registered[id] }})
	b := st.NewBatch()
	written := map[uint64]NodeInfo{}
	for _, c := range []struct {
		id  uint64
		t   pb.ConfChangeType
		url string
	}{
		{1, pb.ConfChangeAddNode, ""}, // as an earlier build bootstrapped the first node
		{2, pb.ConfChangeAddLearnerNode, "https://node2.test"},
		{4, pb.ConfChangeAddLearnerNode, ""},
		{4, pb.ConfChangeRemoveNode, ""},
	} {
		var ctx []byte
		if c.url != "" {
			var err error
			if ctx, err = encodePeerContext(c.url); err != nil {
				t.Fatal(err)
			}
		}
		if err := n.recordPeers(b, []*pb.ConfChangeSingle{{Type: c.t.Enum(), NodeId: proto.Uint64(c.id)}}, ctx, written); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	n.cfg.Peers = NewPeerTable(nil) // a restart
	if err := n.loadPeers(); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[uint64]string{1: "https://first.test:8443", 2: "https://node2.test"} {
		if got, ok := n.cfg.Peers.DialURL(id); !ok || got != want {
			t.Errorf("node %d dialled at %q (%v); want %q", id, got, ok, want)
		}
	}
	if got, ok := n.cfg.Peers.DialURL(4); ok {
		t.Errorf("removed node 4 dialled at %q", got)
	}
}

// recordingNode is a Node with only a store and cfg: enough to apply
// configuration changes to MapNodes and load its peers from it.
func recordingNode(t *testing.T, cfg Config) (*Node, *store.Store) {
	t.Helper()
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Node{st: st, cfg: cfg}, st
}
