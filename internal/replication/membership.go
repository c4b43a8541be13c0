package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/internal/store"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// MapNodes is the public key-value map that records the network's nodes:
// key be64(raft id), value a CBOR NodeInfo. It is written when a
// configuration change applies, so it is in every snapshot and every node
// learns its peers' addresses from the ledger itself.
const MapNodes = "public:charter.nodes"

// Node roles and states as recorded in MapNodes.
const (
	RoleVoter   = "voter"
	RoleLearner = "learner"
	RoleRemoved = "removed"
)

// NodeInfo is a node's record in MapNodes.
type NodeInfo struct {
	ID   uint64 `cbor:"1,keyasint" json:"node_id"`
	URL  string `cbor:"2,keyasint" json:"url"`
	Role string `cbor:"3,keyasint" json:"role"`
}

// peerContext is the Context of a configuration change that adds a node.
type peerContext struct {
	URL string `cbor:"1,keyasint"`
}

func encodePeerContext(u string) ([]byte, error) {
	if u != "" {
		if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" {
			return nil, fmt.Errorf("replication: peer URL %q is not https://HOST:PORT", u)
		}
	}
	return cbor.Marshal(peerContext{URL: u})
}

func decodePeerContext(b []byte) (string, error) {
	if len(b) == 0 {
		return "", nil
	}
	var c peerContext
	if err := cbor.Unmarshal(b, &c); err != nil {
		return "", fmt.Errorf("replication: configuration change context: %w", err)
	}
	return c.URL, nil
}

func nodeKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// recordPeers writes the effect of applied configuration changes on
// MapNodes into b and updates the peer table. A change without a URL (a
// learner's promotion) keeps the node's recorded one: from earlier in the
// same batch (written), else from the store. Reading only the store lost
// the URL whenever the learner was added and promoted in one Apply call,
// which depends on how a node's raft happened to group its committed
// entries: the nodes' MapNodes then differed, and a node that restarted
// knew no address for that peer.
func (n *Node) recordPeers(b *store.Batch, changes []*pb.ConfChangeSingle, ctx []byte, written map[uint64]NodeInfo) error {
	u, err := decodePeerContext(ctx)
	if err != nil {
		return err
	}
	for _, c := range changes {
		id := c.GetNodeId()
		info := NodeInfo{ID: id, URL: u}
		if info.URL == "" {
			if old, ok := written[id]; ok {
				info.URL = old.URL
			} else if old, err := n.NodeInfo(id); err == nil {
				info.URL = old.URL
			}
		}
		switch c.GetType() {
		case pb.ConfChangeAddNode:
			info.Role = RoleVoter
		case pb.ConfChangeAddLearnerNode:
			info.Role = RoleLearner
		case pb.ConfChangeRemoveNode:
			info.Role = RoleRemoved
		default:
			continue
		}
		v, err := cbor.Marshal(info)
		if err != nil {
			return err
		}
		b.PutKV(MapNodes, nodeKey(id), v)
		written[id] = info
		if info.Role == RoleRemoved {
			n.cfg.Peers.Remove(id)
		} else if info.URL != "" && id != n.cfg.ID {
			n.cfg.Peers.Set(id, info.URL)
		}
	}
	return nil
}

// NodeInfo returns a node's record.
func (n *Node) NodeInfo(id uint64) (NodeInfo, error) {
	v, err := n.st.GetKV(MapNodes, nodeKey(id))
	if err != nil {
		return NodeInfo{}, err
	}
	var info NodeInfo
	err = cbor.Unmarshal(v, &info)
	return info, err
}

// Nodes returns every node ever in the network, by id.
func (n *Node) Nodes() ([]NodeInfo, error) {
	var out []NodeInfo
	err := n.st.ScanKV(MapNodes, func(_, v []byte) error {
		var info NodeInfo
		if err := cbor.Unmarshal(v, &info); err != nil {
			return err
		}
		out = append(out, info)
		return nil
	})
	return out, err
}

// loadPeers fills the peer table from MapNodes, after a restart or a
// snapshot; a node recorded there without a URL is dialled at its
// RegisteredURL.
func (n *Node) loadPeers() error {
	nodes, err := n.Nodes()
	if err != nil {
		return err
	}
	for _, info := range nodes {
		if info.ID == n.cfg.ID {
			continue
		}
		switch {
		case info.Role == RoleRemoved:
			n.cfg.Peers.Remove(info.ID)
		case info.URL != "":
			n.cfg.Peers.Set(info.ID, info.URL)
		case n.cfg.RegisteredURL != nil:
			// Recorded without a URL (an earlier build's first node): the
			// address it registered with, unless its messages told us one.
			n.learnPeer(info.ID, n.cfg.RegisteredURL(info.ID))
		}
	}
	return nil
}

// ErrNotLeader is returned by membership changes on a follower.
var ErrNotLeader = errors.New("replication: not the leader")

// AddLearner proposes adding node id, reachable at url, as a learner: it
// receives the log but does not vote until promoted.
func (n *Node) AddLearner(ctx context.Context, id uint64, url string) error {
	return n.changeConf(ctx, pb.ConfChangeAddLearnerNode, id, url)
}

// Promote proposes making learner id a voter.
func (n *Node) Promote(ctx context.Context, id uint64) error {
	return n.changeConf(ctx, pb.ConfChangeAddNode, id, "")
}

// Remove proposes removing node id.
func (n *Node) Remove(ctx context.Context, id uint64) error {
	return n.changeConf(ctx, pb.ConfChangeRemoveNode, id, "")
}

func (n *Node) changeConf(ctx context.Context, t pb.ConfChangeType, id uint64, url string) error {
	if leader, _ := n.Leader(); !leader {
		return ErrNotLeader
	}
	var c []byte
	if url != "" {
		var err error
		if c, err = encodePeerContext(url); err != nil {
			return err
		}
	}
	cc := &pb.ConfChangeV2{
		Changes: []*pb.ConfChangeSingle{{Type: t.Enum(), NodeId: proto.Uint64(id)}},
		Context: c,
	}
	return n.raft.ProposeConfChange(ctx, cc)
}
