package replication

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"

	"github.com/charterlog/charter/internal/fault"
	"github.com/charterlog/charter/internal/store"
	pb "go.etcd.io/raft/v3/raftpb"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/protobuf/proto"
)

// ErrStopping is returned to peers while raft is shutting down.
var ErrStopping = errors.New("replication: node is stopping")

// ReceiveRaft takes a batch of raft messages (the body of a POST to
// peer.PathRaft, EncodeMessages framing) from the peer from, which the
// caller (the node's peer authorization) identified by its TLS key, and
// who says its base URL is peerURL. It maps the errors: ErrBadMessage is a
// malformed batch, ErrForbidden a message from's role may not send;
// nothing of a refused batch reaches raft.
func (n *Node) ReceiveRaft(ctx context.Context, body []byte, peerURL string, from Sender) error {
	msgs, err := DecodeMessages(body, n.cfg.ID)
	if err != nil {
		return err
	}
	if err := authorize(msgs, from); err != nil {
		return err
	}
	if len(msgs) > 0 {
		n.learnPeer(msgs[0].GetFrom(), peerURL)
	}
	for _, m := range msgs {
		if err := n.raft.Step(ctx, m); err != nil {
			return fmt.Errorf("%w: %v", ErrStopping, err)
		}
	}
	return nil
}

// ReceiveSnapshot takes a snapshot from the peer from (a POST to
// peer.PathSnapshot): msg is its MsgSnap without data (protobuf), image
// the image's bytes. The image is staged and checked before raft sees the
// message; raft then installs it through the Ready loop, or ignores it if
// stale. Only the leader (see authorizeSnapshot) may send one: the sender
// is checked before a byte of the image is read.
func (n *Node) ReceiveSnapshot(ctx context.Context, msg []byte, peerURL string, image io.Reader, from Sender) error {
	m, err := decodeSnapshotMessage(msg, n.cfg.ID)
	if err != nil {
		return err
	}
	if err := n.authorizeSnapshot(m, from); err != nil {
		return err
	}
	n.learnPeer(m.GetFrom(), peerURL)
	path, err := n.st.StageSnapshot(n.cfg.SnapshotDir, image)
	if err != nil {
		n.log.Warn("refusing snapshot", "from", m.GetFrom(), "err", err)
		return fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	fault.Point(fault.SnapshotStaged)
	m.Snapshot.Data = []byte(path)
	if err := n.raft.Step(ctx, m); err != nil {
		return fmt.Errorf("%w: %v", ErrStopping, err)
	}
	return nil
}

// SnapshotBase answers a GET of peer.PathSnapshotBase: the ledger prefix this
// node holds (a store.Base in binary), so that a leader about to send it a
// snapshot sends only what lies beyond. Only a voter, which may lead and so
// send snapshots, is told.
func (n *Node) SnapshotBase(from Sender) ([]byte, error) {
	if !from.Voter {
		return nil, fmt.Errorf("%w: node %d is not a voter and sends no snapshots", ErrForbidden, from.ID)
	}
	base, err := n.st.LedgerBase()
	if err != nil {
		return nil, err
	}
	return base.MarshalBinary()
}

// HistoryRange answers a GET of peer.PathHistory: a range of the history
// below floor, for a node backfilling what its state image left out
// (store.HistoryRange). The edge has checked that the caller is a trusted
// node.
func (n *Node) HistoryRange(floor, from uint64, level, maxBytes int) (int, []tlog.Hash, [][]byte, error) {
	return n.st.HistoryRange(floor, from, level, maxBytes)
}

// History is this node's history gap, and false when it holds its whole
// ledger.
func (n *Node) History() (store.HistoryGap, bool) { return n.st.History() }

// decodeSnapshotMessage parses and checks a snapshot's MsgSnap for node
// self. The transport has bounded raw by MaxMessageBytes.
func decodeSnapshotMessage(raw []byte, self uint64) (*pb.Message, error) {
	m := &pb.Message{}
	if err := proto.Unmarshal(raw, m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadMessage, err)
	}
	if m.GetType() != pb.MsgSnap || m.GetSnapshot() == nil || m.GetSnapshot().GetMetadata().GetIndex() == 0 {
		return nil, fmt.Errorf("%w: not a snapshot message", ErrBadMessage)
	}
	if m.GetTo() != self || m.GetFrom() == 0 || m.GetFrom() == self {
		return nil, fmt.Errorf("%w: snapshot from %d to %d at node %d", ErrBadMessage, m.GetFrom(), m.GetTo(), self)
	}
	if len(m.GetSnapshot().GetData()) != 0 {
		return nil, fmt.Errorf("%w: snapshot data belongs in the body", ErrBadMessage)
	}
	return m, nil
}

// installSnapshot replaces this node's state with a staged image that raft
// accepted, then reloads the ledger and the peer table from it.
func (n *Node) installSnapshot(s *pb.Snapshot) error {
	path := string(s.GetData())
	if path == "" {
		return errors.New("replication: snapshot without a staged image")
	}
	meta := s.GetMetadata()
	n.log.Info("installing snapshot", "index", meta.GetIndex(), "term", meta.GetTerm())
	// The store is replaced in batches that are not atomic together:
	// until the state machine is restored, its maps are half written.
	n.installing.Store(true)
	defer n.installing.Store(false)
	if err := n.rlog.InstallSnapshot(path, meta); err != nil {
		return fmt.Errorf("replication: install snapshot: %w", err)
	}
	if err := n.sm.Restore(); err != nil {
		return fmt.Errorf("replication: restore from snapshot: %w", err)
	}
	if err := n.loadPeers(); err != nil {
		return err
	}
	n.mu.Lock()
	n.conf = proto.Clone(meta.GetConfState()).(*pb.ConfState)
	n.mu.Unlock()
	n.ret.reset(meta.GetIndex()+1, meta.GetIndex(), 0, n.cfg.Now())
	n.metrics.logBytes.Set(0)
	n.metrics.snapshotsInstalled.Inc()
	n.setApplied(meta.GetIndex())
	return nil
}

// learnPeer records the address a peer says it has, if this node knows
// none for it yet. The caller is an authenticated node of the network.
func (n *Node) learnPeer(id uint64, u string) {
	if u == "" || id == n.cfg.ID {
		return
	}
	if p, err := url.Parse(u); err != nil || p.Scheme != "https" || p.Host == "" {
		return
	}
	n.cfg.Peers.Learn(id, u)
}

// Installing reports whether a snapshot install is replacing this node's
// state: the store is half written meanwhile, and what reads it (the
// edge's handlers, peer identification) must answer 503 rather than
// read it.
func (n *Node) Installing() bool { return n.installing.Load() }
