package peer

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/internal/store"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Peer endpoints, served by every node over its HTTPS listener with mutual
// TLS (the caller's certificate must chain to the service certificate).
const (
	PathRaft     = "/node/raft"
	PathSnapshot = "/node/raft/snapshot"
	// PathSnapshotBase is where a leader asks a follower which ledger
	// prefix it holds, before sending it a snapshot relative to it.
	PathSnapshotBase = "/node/raft/snapshot/base"
	// headerSnapshotMessage carries the MsgSnap (without data) of a
	// snapshot stream, base64 protobuf.
	headerSnapshotMessage = "Charter-Raft-Message"
	// headerPeerURL is the sender's own base URL, so that a node that has
	// just joined, and knows no addresses yet, can answer the leader.
	headerPeerURL = "Charter-Peer-URL"
)

// HTTPTransport sends raft messages to peers over HTTPS, one queue and one
// sender goroutine per peer, so a slow or dead peer never stalls the Ready
// loop or the other peers. Messages are dropped when a peer's queue is full:
// raft retransmits what it needs.
type HTTPTransport struct {
	self      uint64
	selfURL   string
	peers     *replication.PeerTable
	clientFor func(id uint64) *http.Client
	snapshots replication.SnapshotSource
	log       *slog.Logger

	mu       sync.Mutex
	reporter replication.Reporter
	queues   map[uint64]chan []*pb.Message
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

var _ replication.Transport = (*HTTPTransport)(nil)

// NewHTTPTransport returns a transport for node self. clientFor(id) is the
// client that reaches node id: it must present this node's certificate and
// accept only id's own (a peer is the node its key says, not any holder of
// a certificate).
func NewHTTPTransport(self uint64, selfURL string, peers *replication.PeerTable, clientFor func(id uint64) *http.Client, snapshots replication.SnapshotSource, logger *slog.Logger) *HTTPTransport {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &HTTPTransport{self: self, selfURL: selfURL, peers: peers, clientFor: clientFor, snapshots: snapshots, log: logger,
		queues: map[uint64]chan []*pb.Message{}, ctx: ctx, cancel: cancel}
}

// SetReporter is how replication.Start hands the transport its Node, to
// report unreachable peers and snapshot outcomes to.
func (t *HTTPTransport) SetReporter(r replication.Reporter) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.reporter = r
}

// Close stops the senders and waits for them.
func (t *HTTPTransport) Close() {
	t.cancel()
	t.wg.Wait()
}

const queueDepth = 256

// Send implements replication.Transport.
func (t *HTTPTransport) Send(msgs []*pb.Message) {
	byPeer := map[uint64][]*pb.Message{}
	for _, m := range msgs {
		if m.GetType() == pb.MsgSnap {
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				t.sendSnapshot(m)
			}()
			continue
		}
		byPeer[m.GetTo()] = append(byPeer[m.GetTo()], m)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ctx.Err() != nil {
		return
	}
	for id, ms := range byPeer {
		q, ok := t.queues[id]
		if !ok {
			q = make(chan []*pb.Message, queueDepth)
			t.queues[id] = q
			t.wg.Add(1)
			go t.run(id, q)
		}
		select {
		case q <- ms:
		default:
			t.log.Debug("raft queue full; dropping messages", "peer", id, "messages", len(ms))
			if t.reporter != nil {
				go t.reporter.ReportUnreachable(id)
			}
		}
	}
}

func (t *HTTPTransport) run(id uint64, q chan []*pb.Message) {
	defer t.wg.Done()
	for {
		var batch []*pb.Message
		select {
		case <-t.ctx.Done():
			return
		case ms := <-q:
			batch = append(batch, ms...)
		}
	more:
		for len(batch) < replication.MaxBatchMessages/2 {
			select {
			case ms := <-q:
				batch = append(batch, ms...)
			default:
				break more
			}
		}
		if err := t.post(id, batch); err != nil {
			t.log.Debug("sending raft messages failed", "peer", id, "err", err)
			t.mu.Lock()
			r := t.reporter
			t.mu.Unlock()
			if r != nil {
				r.ReportUnreachable(id)
			}
		}
	}
}

func (t *HTTPTransport) post(id uint64, batch []*pb.Message) error {
	url, ok := t.peers.DialURL(id)
	if !ok {
		return fmt.Errorf("no address for node %d", id)
	}
	body, err := replication.EncodeMessages(batch)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+PathRaft, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(headerPeerURL, t.selfURL)
	resp, err := t.clientFor(id).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("node %d answered %s", id, resp.Status)
	}
	return nil
}

// sendSnapshot streams this node's applied state to the follower m is for.
// The image is taken now, so its position is the current applied index, at
// or beyond the index raft chose; the metadata is rewritten to match it. The
// leader's raft accepts the follower's acknowledgement of the newer index.
// After the transfer raft resumes the follower at the index it chose, so
// the leader's log must still hold that index: the Node pins it from the
// moment the MsgSnap leaves the Ready loop (see snapshotPin).
func (t *HTTPTransport) sendSnapshot(m *pb.Message) {
	status := raft.SnapshotFailure
	defer func() {
		t.mu.Lock()
		r := t.reporter
		t.mu.Unlock()
		if r != nil {
			r.ReportSnapshot(m.GetTo(), status)
		}
	}()
	meta, base, rd, err := t.snapshots.OpenSnapshot(t.followerBase(m.GetTo()))
	if err != nil {
		t.log.Error("opening a snapshot failed", "peer", m.GetTo(), "err", err)
		return
	}
	defer rd.Close()
	body := &countingReader{r: rd}
	chosen := m.GetSnapshot().GetMetadata().GetIndex()
	m = proto.Clone(m).(*pb.Message)
	m.Snapshot = &pb.Snapshot{Metadata: meta}
	hdr, err := proto.Marshal(m)
	if err != nil {
		return
	}
	url, ok := t.peers.DialURL(m.GetTo())
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(t.ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+PathSnapshot, body)
	if err != nil {
		return
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set(headerSnapshotMessage, base64.StdEncoding.EncodeToString(hdr))
	req.Header.Set(headerPeerURL, t.selfURL)
	start := time.Now()
	resp, err := t.clientFor(m.GetTo()).Do(req)
	if err != nil {
		t.log.Warn("sending snapshot failed", "peer", m.GetTo(), "err", err)
		return
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusNoContent {
		t.log.Warn("peer refused snapshot", "peer", m.GetTo(), "status", resp.Status)
		return
	}
	t.log.Info("sent snapshot", "peer", m.GetTo(), "index", meta.GetIndex(), "raft_index", chosen,
		"ledger_from", base.Size, "bytes", body.n, "took", time.Since(start))
	status = raft.SnapshotFinish
}

// followerBase asks node id which ledger prefix it holds. Any failure
// means none: the snapshot is then sent whole, which is always correct.
func (t *HTTPTransport) followerBase(id uint64) store.Base {
	url, ok := t.peers.DialURL(id)
	if !ok {
		return store.Base{}
	}
	ctx, cancel := context.WithTimeout(t.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+PathSnapshotBase, nil)
	if err != nil {
		return store.Base{}
	}
	req.Header.Set(headerPeerURL, t.selfURL)
	resp, err := t.clientFor(id).Do(req)
	if err != nil {
		t.log.Debug("asking a follower for its ledger base failed", "peer", id, "err", err)
		return store.Base{}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	var base store.Base
	if err == nil && resp.StatusCode == http.StatusOK {
		err = base.UnmarshalBinary(body)
	} else if err == nil {
		err = fmt.Errorf("answered %s", resp.Status)
	}
	if err != nil {
		t.log.Debug("asking a follower for its ledger base failed", "peer", id, "err", err)
		return store.Base{}
	}
	return base
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n += int64(k)
	return k, err
}
