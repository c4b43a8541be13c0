package peer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/charterlog/charter/internal/fault"
	"github.com/charterlog/charter/internal/ledgerverify"
	"github.com/charterlog/charter/internal/pause"
	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/internal/store"
	"golang.org/x/mod/sumdb/tlog"
)

// The history protocol: a node that installed a state image (its history
// is incomplete below the image's floor, store/history.go) fetches the
// missing transactions from a trusted peer, one complete subtree of the
// floor's Merkle tree at a time:
//
//	GET /node/raft/history?floor=F&from=N&level=L
//
// asks for the transactions N+1 .. N+2^L (L at most store.MaxBackfillLevel).
// The answer (200, application/octet-stream) is
//
//	"CHARTER-HISTORY-1\n"
//	uvarint(level)                       the level served: L, or less when
//	                                     2^L records exceed maxHistoryBytes
//	uvarint(len(proof)) 32-byte hashes   the sibling hashes from that
//	                                     subtree up to the floor's
//	uvarint(count) ( uvarint(len) record )*
//
// The requester verifies it (store.Backfill) before writing anything.
const (
	PathHistory  = "/node/raft/history"
	historyMagic = "CHARTER-HISTORY-1\n"
	// maxHistoryBytes bounds the records of one answer; one record is
	// served whatever its size (a statement is at most a few MiB).
	maxHistoryBytes = 16 << 20
	// maxHistoryAnswer bounds what the requester reads of an answer: the
	// records (a single one may reach the store's item bound) and the
	// framing.
	maxHistoryAnswer = 80 << 20
	maxHistoryRecord = 64 << 20
)

// ServeHistory answers a GET of PathHistory from n's store. The edge has
// checked that the caller is a trusted node. A range this node's own
// history lacks is store.ErrHistoryIncomplete (the requester asks another
// node); a malformed or impossible one is ErrBadMessage or
// store.ErrBackfillRange.
func ServeHistory(n *replication.Node, r *http.Request) ([]byte, error) {
	q := r.URL.Query()
	num := func(name string, max uint64) (uint64, error) {
		v, err := strconv.ParseUint(q.Get(name), 10, 64)
		if err != nil || v > max {
			return 0, fmt.Errorf("%w: query parameter %s=%q (an integer up to %d)", replication.ErrBadMessage, name, q.Get(name), max)
		}
		return v, nil
	}
	floor, err := num("floor", 1<<62)
	if err != nil {
		return nil, err
	}
	from, err := num("from", 1<<62)
	if err != nil {
		return nil, err
	}
	level, err := num("level", store.MaxBackfillLevel)
	if err != nil {
		return nil, err
	}
	served, proof, recs, err := n.HistoryRange(floor, from, int(level), maxHistoryBytes)
	if err != nil {
		return nil, err
	}
	return encodeHistory(served, proof, recs), nil
}

func encodeHistory(level int, proof []tlog.Hash, recs [][]byte) []byte {
	size := len(historyMagic) + 3*binary.MaxVarintLen64 + len(proof)*tlog.HashSize
	for _, r := range recs {
		size += binary.MaxVarintLen64 + len(r)
	}
	b := make([]byte, 0, size)
	b = append(b, historyMagic...)
	b = binary.AppendUvarint(b, uint64(level))
	b = binary.AppendUvarint(b, uint64(len(proof)))
	for _, h := range proof {
		b = append(b, h[:]...)
	}
	b = binary.AppendUvarint(b, uint64(len(recs)))
	for _, r := range recs {
		b = binary.AppendUvarint(b, uint64(len(r)))
		b = append(b, r...)
	}
	return b
}

// errHistoryAnswer is an answer that does not parse.
var errHistoryAnswer = errors.New("peer: malformed history answer")

// decodeHistory parses an answer, bounded: at most 2^MaxBackfillLevel
// records of maxHistoryRecord bytes, 64 hashes, nothing after.
func decodeHistory(body []byte) (int, []tlog.Hash, [][]byte, error) {
	r := bufio.NewReader(bytes.NewReader(body))
	magic := make([]byte, len(historyMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != historyMagic {
		return 0, nil, nil, fmt.Errorf("%w: no header", errHistoryAnswer)
	}
	level, err := binary.ReadUvarint(r)
	if err != nil || level > store.MaxBackfillLevel {
		return 0, nil, nil, fmt.Errorf("%w: level", errHistoryAnswer)
	}
	np, err := binary.ReadUvarint(r)
	if err != nil || np > 64 {
		return 0, nil, nil, fmt.Errorf("%w: proof length", errHistoryAnswer)
	}
	proof := make([]tlog.Hash, np)
	for i := range proof {
		if _, err := io.ReadFull(r, proof[i][:]); err != nil {
			return 0, nil, nil, fmt.Errorf("%w: proof", errHistoryAnswer)
		}
	}
	nr, err := binary.ReadUvarint(r)
	if err != nil || nr != 1<<level {
		return 0, nil, nil, fmt.Errorf("%w: %d records for level %d", errHistoryAnswer, nr, level)
	}
	recs := make([][]byte, nr)
	for i := range recs {
		l, err := binary.ReadUvarint(r)
		if err != nil || l > maxHistoryRecord || l > uint64(len(body)) {
			return 0, nil, nil, fmt.Errorf("%w: record length", errHistoryAnswer)
		}
		recs[i] = make([]byte, l)
		if _, err := io.ReadFull(r, recs[i]); err != nil {
			return 0, nil, nil, fmt.Errorf("%w: record %d", errHistoryAnswer, i)
		}
	}
	if _, err := r.ReadByte(); err != io.EOF {
		return 0, nil, nil, fmt.Errorf("%w: bytes after the records", errHistoryAnswer)
	}
	return int(level), proof, recs, nil
}

// Backfiller fetches the history a state image left out, from the leader
// (or, when it cannot serve it, any other peer), until the store's history
// is complete; then it waits for the next install that leaves a gap.
type Backfiller struct {
	Self  uint64
	Store *store.Store
	Peers *replication.PeerTable
	// ClientFor reaches node id over the peers' mutual TLS.
	ClientFor func(id uint64) *http.Client
	// Leader is the node this one follows, 0 for none known.
	Leader func() uint64
	Log    *slog.Logger
}

// Run backfills until ctx ends.
func (b *Backfiller) Run(ctx context.Context) error {
	var peer uint64
	var seen store.HistoryGap
	wait := 250 * time.Millisecond
	for {
		changed := b.Store.HistoryChanged()
		g, incomplete := b.Store.History()
		if !incomplete {
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
				continue
			}
		}
		if g.Floor != seen.Floor {
			// At start with a gap left by an earlier run (or a crash), or
			// after an install that left one.
			b.Log.Info("backfill: fetching the history below the state image's floor", "held_to", g.Next, "floor", g.Floor)
			seen = g
		}
		if peer == 0 || peer == b.Self {
			peer = b.pick(0)
		}
		if peer == 0 {
			if pause.For(ctx, wait) != nil {
				return nil
			}
			continue
		}
		want, _, _, _ := store.BackfillLevel(g.Floor, g.Next, store.MaxBackfillLevel)
		start := time.Now()
		n, err := b.fetch(ctx, peer, g, want)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// The range is fetched again, from another peer if there is
			// one (a peer with a gap of its own, a partition, a leader
			// change), after a pause that grows to 5 s while none serves
			// it (a node not yet trusted is refused until it is).
			b.Log.Warn("backfill: a range failed", "peer", peer, "from", g.Next, "level", want, "err", err)
			peer = b.pick(peer)
			if pause.For(ctx, wait) != nil {
				return nil
			}
			wait = min(2*wait, 5*time.Second)
			continue
		}
		wait = 250 * time.Millisecond
		if now, ok := b.Store.History(); !ok {
			b.Log.Info("backfill: history complete", "floor", g.Floor)
		} else {
			b.Log.Debug("backfill: range written", "peer", peer, "from", g.Next, "records", n, "took", time.Since(start), "next", now.Next)
			if now.Next*2 >= now.Floor {
				fault.Point(fault.BackfillHalf)
			}
		}
	}
}

// pick is the peer to ask next: the leader first, then the other peers in
// id order, round the ring from the one that just failed (0: none did),
// so that each is tried in turn while the leader cannot serve.
func (b *Backfiller) pick(failed uint64) uint64 {
	var order []uint64
	if l := b.Leader(); l != 0 && l != b.Self {
		order = append(order, l)
	}
	for _, id := range b.Peers.All() {
		if id != b.Self && (len(order) == 0 || id != order[0]) {
			order = append(order, id)
		}
	}
	if len(order) == 0 {
		return 0
	}
	for i, id := range order {
		if id == failed {
			return order[(i+1)%len(order)]
		}
	}
	return order[0]
}

// fetch asks peer for the range at g.Next and writes it, returning how
// many transactions it wrote.
func (b *Backfiller) fetch(ctx context.Context, peer uint64, g store.HistoryGap, level int) (int, error) {
	base, ok := b.Peers.DialURL(peer)
	if !ok {
		return 0, fmt.Errorf("no address for node %d", peer)
	}
	q := url.Values{}
	q.Set("floor", strconv.FormatUint(g.Floor, 10))
	q.Set("from", strconv.FormatUint(g.Next, 10))
	q.Set("level", strconv.Itoa(level))
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+PathHistory+"?"+q.Encode(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := b.ClientFor(peer).Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHistoryAnswer+1))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("node %d answered %s: %.200s", peer, resp.Status, body)
	}
	if len(body) > maxHistoryAnswer {
		return 0, fmt.Errorf("%w: more than %d bytes", errHistoryAnswer, maxHistoryAnswer)
	}
	served, proof, recs, err := decodeHistory(body)
	if err != nil {
		return 0, err
	}
	if served > level {
		return 0, fmt.Errorf("%w: level %d for %d asked", errHistoryAnswer, served, level)
	}
	if err := b.Store.Backfill(g.Floor, g.Next, served, proof, recs, ledgerverify.RecordEntry); err != nil {
		return 0, err
	}
	return len(recs), nil
}
