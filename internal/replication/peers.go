package replication

import (
	"sort"
	"sync"
)

// PeerTable maps raft ids to peers' base URLs: those recorded in the
// ledger, and local dial overrides that take precedence for sending (a
// proxy in front of a peer, as fault-injection tests use).
type PeerTable struct {
	mu   sync.RWMutex
	m    map[uint64]string
	dial map[uint64]string
}

// Learn records url for id unless an address is already known: how a
// joining node, with an empty ledger, learns where to answer the leader.
func (t *PeerTable) Learn(id uint64, url string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[id]; !ok {
		t.m[id] = url
	}
}

// SetDial makes messages to id go to url instead of its recorded URL.
func (t *PeerTable) SetDial(id uint64, url string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dial == nil {
		t.dial = map[uint64]string{}
	}
	t.dial[id] = url
}

// DialURL is where to send to id: its override, else its recorded URL.
func (t *PeerTable) DialURL(id uint64) (string, bool) {
	t.mu.RLock()
	u, ok := t.dial[id]
	t.mu.RUnlock()
	if ok {
		return u, true
	}
	return t.URL(id)
}

// NewPeerTable returns a table holding peers.
func NewPeerTable(peers map[uint64]string) *PeerTable {
	t := &PeerTable{m: map[uint64]string{}}
	for id, u := range peers {
		t.m[id] = u
	}
	return t
}

// Set records the URL of id.
func (t *PeerTable) Set(id uint64, url string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[id] = url
}

// Remove forgets id.
func (t *PeerTable) Remove(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, id)
}

// URL returns id's base URL.
func (t *PeerTable) URL(id uint64) (string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	u, ok := t.m[id]
	return u, ok
}

// All returns the ids in the table, sorted.
func (t *PeerTable) All() []uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	ids := make([]uint64, 0, len(t.m))
	for id := range t.m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}
