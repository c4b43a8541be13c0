package apphost

import (
	"bytes"
	"cmp"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
)

// appState is the committed state as one app request reads it: private maps
// decrypted on the way in, and every read recorded as the ledger stores it
// (encrypted for private maps), so that the transaction's reads can be
// checked on every node when it applies, without the secret.
type appState struct {
	l *ledger.Ledger
	c *Cipher

	mu    sync.Mutex
	reads map[string]log.Read // by stored map and key
}

func newAppState(l *ledger.Ledger, c *Cipher) *appState {
	return &appState{l: l, c: c, reads: map[string]log.Read{}}
}

func (s *appState) record(r log.Read) {
	id := r.Map + "\x00" + string(r.Key)
	if r.Scan {
		id = r.Map + "\x00*"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.reads[id]; !seen {
		// The first observation is what the request's logic used.
		s.reads[id] = r
	}
}

// ForgetReads implements app.ReadRecorder.
func (s *appState) ForgetReads() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.reads)
}

// Reads is what the request read, in a deterministic order.
func (s *appState) Reads() []log.Read {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]log.Read, 0, len(s.reads))
	for _, r := range s.reads {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b log.Read) int {
		return cmp.Or(strings.Compare(a.Map, b.Map), bytes.Compare(a.Key, b.Key))
	})
	return out
}

// GetKV implements app.State.
func (s *appState) GetKV(m string, key []byte) ([]byte, error) {
	sm, sk := m, key
	if isPrivateMap(m) {
		sm, sk = s.c.storedMap(m), s.c.storedKey(m, key)
	}
	v, err := s.l.GetKV(sm, sk)
	found := err == nil
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return nil, err
	}
	s.record(log.Read{Map: sm, Key: bytes.Clone(sk), Digest: log.ValueDigest(v, found)})
	if !found {
		return nil, ledger.ErrNotFound
	}
	if sm == m {
		return v, nil
	}
	_, value, err := s.c.open(sm, sk, v)
	return value, err
}

// ScanKV implements app.State: entries in ascending (plaintext) key order.
func (s *appState) ScanKV(m string, fn func(key, value []byte) error) error {
	var d log.MapDigester
	if !isPrivateMap(m) {
		type kv struct{ k, v []byte }
		var all []kv
		err := s.l.ScanKV(m, func(k, v []byte) error {
			d.Add(k, v)
			all = append(all, kv{bytes.Clone(k), bytes.Clone(v)})
			return nil
		})
		if err != nil {
			return err
		}
		s.record(log.Read{Map: m, Scan: true, Digest: d.Sum()})
		for _, e := range all {
			if err := fn(e.k, e.v); err != nil {
				return err
			}
		}
		return nil
	}
	sm := s.c.storedMap(m)
	type entry struct{ key, value []byte }
	var entries []entry
	err := s.l.ScanKV(sm, func(sk, sealed []byte) error {
		d.Add(sk, sealed)
		k, v, err := s.c.open(sm, sk, sealed)
		if err != nil {
			return err
		}
		entries = append(entries, entry{bytes.Clone(k), bytes.Clone(v)})
		return nil
	})
	if err != nil {
		return err
	}
	s.record(log.Read{Map: sm, Scan: true, Digest: d.Sum()})
	slices.SortFunc(entries, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
	for _, e := range entries {
		if err := fn(e.key, e.value); err != nil {
			return err
		}
	}
	return nil
}

// storedWrites turns an app's writes into the writes the ledger stores:
// private maps encrypted.
func storedWrites(c *Cipher, writes []log.Write) ([]log.Write, error) {
	out := make([]log.Write, 0, len(writes))
	for _, w := range writes {
		if !isPrivateMap(w.Map) {
			out = append(out, w)
			continue
		}
		sm, sk := c.storedMap(w.Map), c.storedKey(w.Map, w.Key)
		if w.Delete {
			out = append(out, log.Write{Map: sm, Key: sk, Delete: true})
			continue
		}
		sealed, err := c.seal(sm, sk, w.Key, w.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, log.Write{Map: sm, Key: sk, Value: sealed})
	}
	return out, nil
}

// txWritesState is the key-value state one transaction wrote, decrypted:
// what ccf.historical offers of a past transaction (see appHistorical). It
// implements app.State, read-only.
type txWritesState struct {
	c    *Cipher
	maps map[string]map[string][]byte // stored map name → plaintext key → value
}

func newTxWritesState(c *Cipher, writes []log.Write) (*txWritesState, error) {
	ws := &txWritesState{c: c, maps: map[string]map[string][]byte{}}
	for _, w := range writes {
		if w.Delete {
			continue
		}
		k, v := w.Key, w.Value
		if strings.HasPrefix(w.Map, privateMapPrefix) {
			key, value, err := c.open(w.Map, w.Key, w.Value)
			if err != nil {
				return nil, err
			}
			k, v = key, value
		}
		if ws.maps[w.Map] == nil {
			ws.maps[w.Map] = map[string][]byte{}
		}
		ws.maps[w.Map][string(k)] = v
	}
	return ws, nil
}

func (ws *txWritesState) stored(m string) map[string][]byte {
	if isPrivateMap(m) {
		return ws.maps[ws.c.storedMap(m)]
	}
	return ws.maps[m]
}

func (ws *txWritesState) GetKV(m string, key []byte) ([]byte, error) {
	v, ok := ws.stored(m)[string(key)]
	if !ok {
		return nil, ledger.ErrNotFound
	}
	return v, nil
}

func (ws *txWritesState) ScanKV(m string, fn func(key, value []byte) error) error {
	entries := ws.stored(m)
	keys := make([]string, 0, len(entries))
	for k := range entries {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn([]byte(k), entries[k]); err != nil {
			return err
		}
	}
	return nil
}
