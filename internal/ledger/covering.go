package ledger

import (
	"sort"
	"sync"
)

// coveringIndex finds, from memory, the first checkpoint at or beyond a
// tree size, for the checkpoints applied since the ledger was opened or
// restored: every receipt needs it, and a store seek cost 3% of a
// registration's CPU. Sizes at or below floor are not known here (an
// earlier checkpoint may cover them) and are for the store to answer.
//
// Checkpoints are added only after their batch committed, so whatever
// the index answers is in the store too; one committed but not yet added
// lies beyond the index's last size, which is left to the store.
type coveringIndex struct {
	mu    sync.RWMutex
	floor uint64
	cps   []checkpointPos // ascending tree size, each > floor
}

type checkpointPos struct{ treeSize, seqno uint64 }

// coveringIndexSize bounds the checkpoints held; past it the older half is
// dropped (and left to the store). A receipt is nearly always fetched
// within a checkpoint or two of its registration.
const coveringIndexSize = 1024

// reset forgets every checkpoint: sizes up to floor (the newest checkpoint's
// tree size in the store) are the store's to answer.
func (c *coveringIndex) reset(floor uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.floor, c.cps = floor, nil
}

// add records a committed checkpoint; tree sizes arrive in increasing order.
func (c *coveringIndex) add(treeSize, seqno uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := len(c.cps); treeSize <= c.floor || n > 0 && treeSize <= c.cps[n-1].treeSize {
		return // not beyond what is known: only a bug would get here
	}
	if len(c.cps) >= coveringIndexSize {
		half := len(c.cps) / 2
		c.floor = c.cps[half-1].treeSize
		c.cps = append(c.cps[:0], c.cps[half:]...)
	}
	c.cps = append(c.cps, checkpointPos{treeSize, seqno})
}

// find returns the first checkpoint whose tree size is at least size, if
// the index knows it.
func (c *coveringIndex) find(size uint64) (treeSize, seqno uint64, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if size <= c.floor || len(c.cps) == 0 || size > c.cps[len(c.cps)-1].treeSize {
		return 0, 0, false
	}
	i := sort.Search(len(c.cps), func(i int) bool { return c.cps[i].treeSize >= size })
	return c.cps[i].treeSize, c.cps[i].seqno, true
}
