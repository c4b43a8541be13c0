package peer

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/replication"
	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
)

// fullStore is a store holding a ledger of n write-set transactions with
// a checkpoint index item every 100, as a node that never missed any.
func fullStore(t *testing.T, n int) *store.Store {
	t.Helper()
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	// Every hash stays in the tree's memory (no Committed), so its
	// backing reader is never read.
	tree := log.NewTree(0, st)
	b := st.NewBatch()
	for i := 0; i < n; i++ {
		seqno := uint64(i + 1)
		rec := &log.Record{Type: log.TxWrites, View: 2, Seqno: seqno, Body: []byte(fmt.Sprintf("writes %d", seqno))}
		rec.Entry = log.ComputeEntry(rec.Type, rec.View, rec.Seqno, rec.Body)
		raw, err := log.MarshalRecord(rec)
		if err != nil {
			t.Fatal(err)
		}
		b.PutRecord(seqno, raw)
		if _, err := tree.Append(rec.Entry, b.PutHash); err != nil {
			t.Fatal(err)
		}
		if seqno%100 == 0 {
			b.PutCheckpoint(seqno-1, seqno)
		}
	}
	b.PutLedgerState([]byte("state"))
	b.SetApplied(uint64(n)+5, 2)
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	return st
}

// historyServer serves PathHistory from st, as a trusted peer's edge
// would; alter, if set, rewrites every answer's body first.
func historyServer(t *testing.T, st *store.Store, alter func([]byte) []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		floor, _ := strconv.ParseUint(q.Get("floor"), 10, 64)
		from, _ := strconv.ParseUint(q.Get("from"), 10, 64)
		level, _ := strconv.Atoi(q.Get("level"))
		served, proof, recs, err := st.HistoryRange(floor, from, level, maxHistoryBytes)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		body := encodeHistory(served, proof, recs)
		if alter != nil {
			body = alter(body)
		}
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The backfiller asks the leader first and, when its answers do not
// verify (an altered record) or it cannot serve (its own history has a
// gap), the other peers; it ends with the leader's ledger, having written
// nothing that did not verify.
func TestBackfillerFallsBackToAnotherPeer(t *testing.T) {
	const n = 5000 // more than a delta may carry: a state image
	full := fullStore(t, n)
	meta, _, r, err := full.OpenSnapshot(store.Base{})
	if err != nil {
		t.Fatal(err)
	}
	var image bytes.Buffer
	if _, err := image.ReadFrom(r); err != nil {
		t.Fatal(err)
	}
	r.Close()
	install := func() *store.Store {
		dir := t.TempDir()
		st, err := store.Open(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		path, err := st.StageSnapshot(store.SnapshotDir(dir), bytes.NewReader(image.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		rl, err := st.RaftLog()
		if err != nil {
			t.Fatal(err)
		}
		if err := rl.InstallSnapshot(path, meta); err != nil {
			t.Fatal(err)
		}
		return st
	}
	follower, gapped := install(), install()
	g, incomplete := follower.History()
	if !incomplete || g.Floor != 4999 {
		t.Fatalf("after the state image: gap %+v %v, want below 4999", g, incomplete)
	}

	altered := historyServer(t, full, func(b []byte) []byte {
		// The last record's body altered; the record well formed.
		level, proof, recs, err := decodeHistory(b)
		if err != nil {
			t.Error(err)
			return b
		}
		rec, err := log.UnmarshalRecord(recs[len(recs)-1])
		if err != nil {
			t.Error(err)
			return b
		}
		rec.Body = append(rec.Body, '!')
		if recs[len(recs)-1], err = log.MarshalRecord(rec); err != nil {
			t.Error(err)
		}
		return encodeHistory(level, proof, recs)
	})
	ownGap := historyServer(t, gapped, nil)
	good := historyServer(t, full, nil)
	peers := replication.NewPeerTable(map[uint64]string{2: altered.URL, 3: ownGap.URL, 4: good.URL})
	bf := &Backfiller{Self: 1, Store: follower, Peers: peers,
		ClientFor: func(uint64) *http.Client { return http.DefaultClient },
		Leader:    func() uint64 { return 2 }, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- bf.Run(ctx) }()
	for {
		changed := follower.HistoryChanged()
		if _, incomplete := follower.History(); !incomplete {
			break
		}
		select {
		case <-changed:
		case <-ctx.Done():
			g, _ := follower.History()
			t.Fatalf("backfill did not complete: gap %+v", g)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want, _ := full.LedgerBase()
	got, err := follower.LedgerBase()
	if err != nil || got != want {
		t.Fatalf("follower's ledger %+v (%v), want %+v", got, err, want)
	}
	for seqno := uint64(1); seqno <= n; seqno++ {
		a, _ := full.Record(seqno)
		b, err := follower.Record(seqno)
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("record %d differs (%v)", seqno, err)
		}
	}
}
