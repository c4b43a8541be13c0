package ledger

import (
	"sync"

	"github.com/charterlog/charter/internal/store"
)

// kvCache holds values of the applied key-value state that were recently
// read or written, in front of the store: an app request reads a handful
// of keys (a user's certificate, two balances), and a store lookup that
// merges memtables and levels costs more than the rest of reading them.
//
// Only Apply changes the state, and only after its batch is committed:
// then it writes the batch's values through (written) and bumps gen. A
// reader that missed fills the cache with what it read from the store
// only if gen did not move meanwhile, so a value read before a commit is
// never cached after it.
type kvCache struct {
	mu  sync.Mutex
	gen uint64
	m   map[string]kvValue // by cacheKey
}

type kvValue struct {
	v       []byte // owned by the cache: handed out as copies
	present bool
}

// kvCacheEntries bounds the cache; when full it starts over.
const kvCacheEntries = 1 << 16

func newKVCache() *kvCache { return &kvCache{m: make(map[string]kvValue)} }

func cacheKey(m string, key []byte) string {
	b := make([]byte, 0, len(m)+1+len(key))
	b = append(append(append(b, m...), 0), key...)
	return string(b)
}

// get returns the value of key in map m from the cache, or from st
// (caching it). Absence is store.ErrNotFound, as from st.
func (c *kvCache) get(st *store.Store, m string, key []byte) ([]byte, error) {
	k := cacheKey(m, key)
	e, gen, ok := c.lookup(k)
	if ok {
		if !e.present {
			return nil, store.ErrNotFound
		}
		return append([]byte(nil), e.v...), nil
	}
	v, err := st.GetKV(m, key)
	if err != nil && !store.IsNotFound(err) {
		return nil, err
	}
	c.fill(k, kvValue{v: append([]byte(nil), v...), present: err == nil}, gen)
	return v, err
}

// lookup returns the cached value of k, if any, and the generation a
// value read from the store now may be cached under.
func (c *kvCache) lookup(k string) (kvValue, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	return e, c.gen, ok
}

// fill caches e, read from the store at generation gen, unless an apply
// has committed since.
func (c *kvCache) fill(k string, e kvValue, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == gen {
		c.put(k, e)
	}
}

func (c *kvCache) put(k string, e kvValue) {
	if len(c.m) >= kvCacheEntries {
		clear(c.m)
	}
	c.m[k] = e
}

// written records the values an applied batch committed, then moves gen.
// Apply calls it after the commit and before publishing the new state.
func (c *kvCache) written(view *batchView) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for m, kv := range view.writes {
		for key, v := range kv {
			k := cacheKey(m, []byte(key))
			if v == nil {
				c.put(k, kvValue{})
			} else {
				c.put(k, kvValue{v: append([]byte(nil), (*v)...), present: true})
			}
		}
	}
	c.gen++
}

// reset forgets everything, after the store was replaced.
func (c *kvCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
	c.gen++
}
