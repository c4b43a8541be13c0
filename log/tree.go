package log

import (
	"fmt"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// Tree appends leaves to the Merkle tree kept as tlog stored hashes (about two
// per leaf) and reads them back for roots and proofs, each in one batched read
// of O(log n) hashes at any size.
//
// Appending needs the roots of the complete subtrees on the tree's right
// edge, which were almost always written moments ago; Tree keeps the hashes it
// wrote recently in memory so appends do not read the store. Older hashes come
// from the backing reader, which must return every hash the Tree has been told
// is durable (Committed).
type Tree struct {
	backing tlog.HashReader

	mu   sync.RWMutex
	size int64 // leaves appended, durable or not
	// cur holds every hash appended since the last rotation, including those
	// not yet committed; prev the generation before. Rotation happens only at
	// Committed, so an uncommitted hash is always in cur.
	cur, prev hashRun

	// read holds hashes read from the backing reader. A durable hash
	// never changes, and the ones proofs of recent leaves ask for are the
	// roots of the tree's large, old complete subtrees: the same few for
	// every receipt, which at 10^7 leaves otherwise cost a store read each
	// (a third of a registration's ledger cost). It is cleared in bulk
	// when full, which costs one re-read of each hash in use.
	readMu sync.Mutex
	read   map[int64]tlog.Hash
}

// cacheGeneration bounds each cache generation; two generations are kept.
const cacheGeneration = 1 << 15

// hashRun is a run of stored hashes with consecutive indexes from base on.
// A tree's stored hashes are written in index order, so the recent ones are
// a run: a slice, where a map spent a tenth of an append hashing and
// growing.
type hashRun struct {
	base   int64
	hashes []tlog.Hash
}

func (r *hashRun) get(i int64) (tlog.Hash, bool) {
	if i < r.base || i >= r.base+int64(len(r.hashes)) {
		return tlog.Hash{}, false
	}
	return r.hashes[i-r.base], true
}

// add appends hash i, which must follow the run's last (or start it).
func (r *hashRun) add(i int64, h tlog.Hash) error {
	if len(r.hashes) == 0 {
		r.base = i
	} else if next := r.base + int64(len(r.hashes)); i != next {
		return fmt.Errorf("log: stored hash %d appended after %d", i, next-1)
	}
	r.hashes = append(r.hashes, h)
	return nil
}

// truncate forgets the hashes from index i on.
func (r *hashRun) truncate(i int64) {
	switch {
	case i <= r.base:
		r.hashes = r.hashes[:0]
	case i < r.base+int64(len(r.hashes)):
		r.hashes = r.hashes[:i-r.base]
	}
}

// readCacheSize bounds the hashes kept from the backing reader (about 3
// MiB).
const readCacheSize = 1 << 16

// NewTree returns a tree of the given size over backing.
func NewTree(size int64, backing tlog.HashReader) *Tree {
	return &Tree{backing: backing, size: size}
}

// Size is the number of leaves appended.
func (t *Tree) Size() int64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.size
}

// Append adds one leaf for entry and calls write with each new stored hash
// and its index; the caller persists them with the transaction that made the
// leaf. It returns the new leaf's index.
func (t *Tree) Append(entry [32]byte, write func(index int64, h tlog.Hash)) (int64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.size
	hashes, err := tlog.StoredHashesForRecordHash(n, tlog.RecordHash(entry[:]), tlog.HashReaderFunc(t.readLocked))
	if err != nil {
		return 0, fmt.Errorf("log: append leaf %d: %w", n, err)
	}
	base := tlog.StoredHashIndex(0, n)
	for i, h := range hashes {
		if err := t.cur.add(base+int64(i), h); err != nil {
			t.cur.truncate(base)
			return 0, err
		}
	}
	for i, h := range hashes {
		write(base+int64(i), h)
	}
	t.size = n + 1
	return n, nil
}

// Rollback forgets leaves beyond size, after the batch that appended them
// failed to commit.
func (t *Tree) Rollback(size int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if size >= t.size {
		return
	}
	t.cur.truncate(tlog.StoredHashIndex(0, size))
	t.size = size
}

// Reset makes the tree one of size leaves whose hashes are all in the
// backing reader, after the store was replaced by a snapshot.
func (t *Tree) Reset(size int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.size = size
	t.cur, t.prev = hashRun{}, hashRun{}
	t.readMu.Lock()
	t.read = nil
	t.readMu.Unlock()
}

// Committed tells the tree that everything appended so far is durable in the
// backing store, so older cached hashes may be dropped.
func (t *Tree) Committed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.cur.hashes) >= cacheGeneration {
		// The generation that leaves lends its array to the next one:
		// readers copy hashes out under the lock.
		t.prev, t.cur = t.cur, hashRun{hashes: t.prev.hashes[:0]}
	}
}

// ReadHashes implements tlog.HashReader.
func (t *Tree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.readLocked(indexes)
}

func (t *Tree) readLocked(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missIdx []int64
	var missPos []int
	for i, x := range indexes {
		if h, ok := t.cur.get(x); ok {
			out[i] = h
		} else if h, ok := t.prev.get(x); ok {
			out[i] = h
		} else {
			missIdx = append(missIdx, x)
			missPos = append(missPos, i)
		}
	}
	if len(missIdx) == 0 {
		// Appends end here: they read only recent hashes, without the
		// read cache's lock.
		return out, nil
	}
	t.readMu.Lock()
	k := 0
	for j, x := range missIdx {
		if h, ok := t.read[x]; ok {
			out[missPos[j]] = h
		} else {
			missIdx[k], missPos[k] = x, missPos[j]
			k++
		}
	}
	t.readMu.Unlock()
	missIdx, missPos = missIdx[:k], missPos[:k]
	if len(missIdx) == 0 {
		return out, nil
	}
	got, err := t.backing.ReadHashes(missIdx)
	if err != nil {
		return nil, err
	}
	if len(got) != len(missIdx) {
		return nil, fmt.Errorf("log: hash reader returned %d hashes for %d indexes", len(got), len(missIdx))
	}
	t.readMu.Lock()
	if t.read == nil || len(t.read)+len(got) > readCacheSize {
		t.read = make(map[int64]tlog.Hash, readCacheSize)
	}
	for j, pos := range missPos {
		out[pos] = got[j]
		t.read[missIdx[j]] = got[j]
	}
	t.readMu.Unlock()
	return out, nil
}

// Root returns the root of the first n leaves (RFC 9162 MTH(D[0:n])).
func (t *Tree) Root(n int64) (tlog.Hash, error) {
	if n <= 0 || n > t.Size() {
		return tlog.Hash{}, fmt.Errorf("log: no tree of size %d (size is %d)", n, t.Size())
	}
	return tlog.TreeHash(n, t)
}

// InclusionProof returns the RFC 9162 audit path of leaf index in the tree of
// size treeSize, leaf first.
func (t *Tree) InclusionProof(treeSize, index int64) ([][]byte, error) {
	if index < 0 || index >= treeSize || treeSize > t.Size() {
		return nil, fmt.Errorf("log: no leaf %d in a tree of size %d (size is %d)", index, treeSize, t.Size())
	}
	p, err := tlog.ProveRecord(treeSize, index, t)
	if err != nil {
		return nil, err
	}
	return hashesToBytes(p), nil
}

// ConsistencyProof returns the RFC 9162 consistency proof from size1 to size2.
func (t *Tree) ConsistencyProof(size1, size2 int64) ([][]byte, error) {
	if size1 <= 0 || size1 > size2 || size2 > t.Size() {
		return nil, fmt.Errorf("log: no consistency proof from %d to %d (size is %d)", size1, size2, t.Size())
	}
	if size1 == size2 {
		return [][]byte{}, nil
	}
	p, err := tlog.ProveTree(size2, size1, t)
	if err != nil {
		return nil, err
	}
	return hashesToBytes(p), nil
}

func hashesToBytes(hs []tlog.Hash) [][]byte {
	out := make([][]byte, len(hs))
	for i := range hs {
		h := hs[i]
		out[i] = h[:]
	}
	return out
}
