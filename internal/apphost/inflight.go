package apphost

import (
	"sync"

	"github.com/charterlog/charter/log"
)

// inflightWrites knows which keys the app transactions this node has
// submitted, and that have not applied yet, will write. A request that
// read one of them would almost surely conflict when it applies: its read
// predates a write ahead of it in the log. Such a request waits for that
// transaction and runs again on the state it left, rather than going
// through raft only to be refused. With clients racing for a few
// accounts, most executions had been such doomed transactions.
//
// It is an optimisation only: a race it misses (a write submitted just
// after the check) is caught by the read check at apply, as before.
// Keys are as the ledger stores them (private maps encrypted), the form
// of both a transaction's reads and its stored writes.
type inflightWrites struct {
	mu   sync.Mutex
	keys map[string]*inflightKey
}

type inflightKey struct {
	n    int
	free chan struct{} // closed when n drops to zero
}

func keyID(m string, k []byte) string { return m + "\x00" + string(k) }

// mapID stands for every key of a map: a scan of it meets any write to it.
func mapID(m string) string { return m + "\x01" }

// hold marks the keys writes will change as in flight until release is
// called (when the transaction has applied or failed).
func (f *inflightWrites) hold(writes []log.Write) (release func()) {
	ids := make([]string, 0, 2*len(writes))
	for _, w := range writes {
		ids = append(ids, keyID(w.Map, w.Key), mapID(w.Map))
	}
	f.mu.Lock()
	if f.keys == nil {
		f.keys = map[string]*inflightKey{}
	}
	for _, id := range ids {
		k := f.keys[id]
		if k == nil {
			k = &inflightKey{free: make(chan struct{})}
			f.keys[id] = k
		}
		k.n++
	}
	f.mu.Unlock()
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, id := range ids {
			if k := f.keys[id]; k != nil {
				if k.n--; k.n == 0 {
					close(k.free)
					delete(f.keys, id)
				}
			}
		}
	}
}

// busy returns a channel that closes when a key among reads is no longer
// in flight, or nil if none is.
func (f *inflightWrites) busy(reads []log.Read) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range reads {
		id := keyID(r.Map, r.Key)
		if r.Scan {
			id = mapID(r.Map)
		}
		if k := f.keys[id]; k != nil {
			return k.free
		}
	}
	return nil
}
