package app_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
)

// memState is an in-memory app.State.
type memState struct {
	mu   sync.RWMutex
	maps map[string]map[string][]byte
}

func newMemState() *memState { return &memState{maps: map[string]map[string][]byte{}} }

func (s *memState) GetKV(m string, key []byte) ([]byte, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.maps[m][string(key)]
	if !ok {
		return nil, ledger.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (s *memState) ScanKV(m string, fn func(k, v []byte) error) error {
	s.mu.RLock()
	keys := make([]string, 0, len(s.maps[m]))
	for k := range s.maps[m] {
		keys = append(keys, k)
	}
	vals := make([][]byte, len(keys))
	sort.Strings(keys)
	for i, k := range keys {
		vals[i] = s.maps[m][k]
	}
	s.mu.RUnlock()
	for i, k := range keys {
		if err := fn([]byte(k), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *memState) put(m string, k, v []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maps[m] == nil {
		s.maps[m] = map[string][]byte{}
	}
	s.maps[m][string(k)] = bytes.Clone(v)
}

func (s *memState) apply(ws *log.WriteSet) {
	if ws == nil {
		return
	}
	for _, w := range ws.Writes {
		if w.Delete {
			s.mu.Lock()
			delete(s.maps[w.Map], string(w.Key))
			s.mu.Unlock()
		} else {
			s.put(w.Map, w.Key, w.Value)
		}
	}
}

// snapshot copies the state (for the fake historical store).
func (s *memState) snapshot() *memState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := newMemState()
	for m, kv := range s.maps {
		c.maps[m] = map[string][]byte{}
		for k, v := range kv {
			c.maps[m][k] = bytes.Clone(v)
		}
	}
	return c
}

// fakeConsensus reports a fixed committed id.
type fakeConsensus struct{ view, seqno uint64 }

func (f fakeConsensus) LastCommitted() (uint64, uint64) { return f.view, f.seqno }
func (f fakeConsensus) Status(view, seqno uint64) string {
	switch {
	case view != f.view:
		return app.StatusInvalid
	case seqno <= f.seqno:
		return app.StatusCommitted
	default:
		return app.StatusPending
	}
}
func (f fakeConsensus) ViewOf(seqno uint64) (uint64, bool) { return f.view, seqno <= f.seqno }

// fakeHistorical serves recorded states, each only after it was asked for
// once (the first request answers "not ready", as CCF's cache does).
type fakeHistorical struct {
	mu     sync.Mutex
	states map[uint64]app.HistoricalState
	asked  map[uint64]bool
}

func newFakeHistorical() *fakeHistorical {
	return &fakeHistorical{states: map[uint64]app.HistoricalState{}, asked: map[uint64]bool{}}
}

func (f *fakeHistorical) record(view, seqno uint64, s *memState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ws := sha256.Sum256([]byte{byte(seqno)})
	f.states[seqno] = app.HistoricalState{
		TxID: app.FormatTxID(view, seqno),
		Receipt: app.Receipt{
			Signature: "c2lnbmF0dXJl",
			Cert:      "-----BEGIN CERTIFICATE-----\nnode\n-----END CERTIFICATE-----\n",
			NodeID:    "a1b2",
			Proof:     []app.ProofStep{{Left: hex.EncodeToString(ws[:])}, {Right: hex.EncodeToString(ws[:])}},
			LeafComponents: app.LeafComponents{
				WriteSetDigest: hex.EncodeToString(ws[:]),
				CommitEvidence: "ce:2.3:abc",
			},
		},
		KV: s.snapshot(),
	}
}

func (f *fakeHistorical) StateRange(handle, from, to uint64, expiry time.Duration) ([]app.HistoricalState, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []app.HistoricalState
	ready := true
	for s := from; s <= to; s++ {
		st, ok := f.states[s]
		if !ok || !f.asked[s] {
			ready = false
		}
		f.asked[s] = true
		out = append(out, st)
	}
	if !ready {
		return nil, false, nil
	}
	return out, true, nil
}

func (f *fakeHistorical) DropCachedStates(handle uint64) (bool, error) { return true, nil }

// callResult is a call's outcome, for assertions.
type callResult struct {
	res *app.Result
	err error
}

// do routes and runs one request, checks its read set and applies its
// writes to s, as the node would.
func do(t testing.TB, a *app.App, s *memState, method, path, query string, body []byte, caller any) callResult {
	t.Helper()
	ep, params, ok := a.Match(method, path)
	if !ok {
		t.Fatalf("%s %s: no endpoint (methods %v)", method, path, a.Methods(path))
	}
	url := "/app" + path
	if query != "" {
		url += "?" + query
	}
	req := &app.Request{Method: method, Path: path, Query: query, URL: url, Hostname: "node.test",
		Route: ep.Template, Params: params, Body: body, Caller: caller,
		Headers: map[string]string{"Content-Type": "application/json"}}
	tx := app.NewTx(s)
	res, err := a.Call(context.Background(), ep, req, tx)
	if err != nil {
		return callResult{err: err}
	}
	if err := res.ReadSet.Check(s); err != nil {
		t.Fatalf("%s %s: read set: %v", method, path, err)
	}
	if res.ReadOnly && res.WriteSet != nil {
		t.Fatalf("%s %s: readonly endpoint produced writes", method, path)
	}
	s.apply(res.WriteSet)
	return callResult{res: res}
}
