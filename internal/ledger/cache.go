package ledger

import (
	"sync"

	"github.com/charterlog/charter/log"
)

// checkpointCache holds recently used checkpoints. Checkpoints never change
// once applied, so entries never go stale; the cache is cleared in bulk when
// it reaches its bound, which is cheaper than LRU bookkeeping on every
// receipt and costs one re-read per checkpoint in use.
type checkpointCache struct {
	mu sync.RWMutex
	m  map[uint64]*log.Checkpoint
}

const checkpointCacheSize = 4096

func (c *checkpointCache) get(seqno uint64) (*log.Checkpoint, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cp, ok := c.m[seqno]
	return cp, ok
}

func (c *checkpointCache) put(seqno uint64, cp *log.Checkpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= checkpointCacheSize {
		c.m = make(map[uint64]*log.Checkpoint, checkpointCacheSize)
	}
	c.m[seqno] = cp
}

func (c *checkpointCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m = nil
}
