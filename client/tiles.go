package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/charterlog/charter/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// TileAudit is what AuditTiles established about a log.
type TileAudit struct {
	Note       []byte // the newest checkpoint, as served (signed note)
	Checkpoint *log.ParsedCheckpoint
	// PreviousSize is the tree size of the earlier checkpoint proved to be
	// a prefix of the newest one (0: none was given).
	PreviousSize uint64
	// EntriesFrom and EntriesChecked: the leaves from index EntriesFrom
	// whose entries were fetched and found to hash to their leaves (none
	// unless asked for).
	EntriesFrom, EntriesChecked uint64
}

// AuditOptions say what AuditTiles checks beyond the newest checkpoint's
// signature and root.
type AuditOptions struct {
	// Previous is an earlier checkpoint note of the same log (one saved
	// from an earlier audit); the newest must extend it.
	Previous []byte
	// Entries fetches entry bundles and checks each entry against its leaf
	// hash: every bundle, or with Previous only those from the previous
	// checkpoint's size on (an earlier audit checked the rest).
	Entries bool
	// Progress, if set, is called after each entry bundle.
	Progress func(done, total uint64)
}

// ErrAudit is a check of AuditTiles that failed: the log is not what its
// signed checkpoint says, or not an extension of the earlier one.
var ErrAudit = errors.New("audit failed")

// AuditTiles checks a log through its C2SP tlog-tiles and checkpoint
// alone: the newest checkpoint's signature (verifier), its root, rebuilt
// from tiles that tlog checks against it as it loads them, consistency
// with an earlier checkpoint, and (with Entries) every leaf's entry.
func (c *Client) AuditTiles(ctx context.Context, verifier note.Verifier, opts AuditOptions) (*TileAudit, error) {
	raw, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetching the checkpoint: %w", err)
	}
	cp, err := log.OpenCheckpointNote(raw, verifier)
	if err != nil {
		return nil, fmt.Errorf("%w: the newest checkpoint: %v", ErrAudit, err)
	}
	out := &TileAudit{Note: raw, Checkpoint: cp}
	size, root := int64(cp.Size), tlog.Hash(cp.Root)
	hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, tileFetcher{ctx, c})
	if got, err := tlog.TreeHash(size, hr); err != nil {
		return nil, fmt.Errorf("%w: rebuilding the root of size %d from tiles: %v", ErrAudit, size, err)
	} else if got != root {
		return nil, fmt.Errorf("%w: the tiles give root %x for size %d, the checkpoint says %x", ErrAudit, got[:], size, root[:])
	}

	if opts.Previous != nil {
		prev, err := log.OpenCheckpointNote(opts.Previous, verifier)
		if err != nil {
			return nil, fmt.Errorf("%w: the previous checkpoint: %v", ErrAudit, err)
		}
		if prev.Origin != cp.Origin {
			return nil, fmt.Errorf("%w: the previous checkpoint is of log %q, this one of %q", ErrAudit, prev.Origin, cp.Origin)
		}
		if prev.Size > cp.Size {
			return nil, fmt.Errorf("%w: the previous checkpoint has size %d, the newest only %d: the log went back (or this node lags; try the leader)", ErrAudit, prev.Size, cp.Size)
		}
		p, err := tlog.ProveTree(size, int64(prev.Size), hr)
		if err == nil {
			err = tlog.CheckTree(p, size, root, int64(prev.Size), tlog.Hash(prev.Root))
		}
		if err != nil {
			return nil, fmt.Errorf("%w: the checkpoint of size %d is not a prefix of the newest (size %d): %v", ErrAudit, prev.Size, cp.Size, err)
		}
		out.PreviousSize = prev.Size
	}

	if opts.Entries {
		first := int64(out.PreviousSize) >> log.TileHeight << log.TileHeight // the bundle holding the first new leaf
		out.EntriesFrom = uint64(first)
		for start := first; start < size; start += 1 << log.TileHeight {
			w := int(min(1<<log.TileHeight, size-start))
			bundle := tlog.Tile{H: log.TileHeight, L: -1, N: start >> log.TileHeight, W: w}
			b, err := c.get(ctx, "/"+log.TilePath(bundle))
			if err != nil {
				return nil, fmt.Errorf("fetching %s: %w", log.TilePath(bundle), err)
			}
			entries, err := log.ParseEntryBundle(b)
			if err == nil && len(entries) != w {
				err = fmt.Errorf("%d entries, want %d", len(entries), w)
			}
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrAudit, log.TilePath(bundle), err)
			}
			indexes := make([]int64, w)
			for i := range indexes {
				indexes[i] = tlog.StoredHashIndex(0, start+int64(i))
			}
			leaves, err := hr.ReadHashes(indexes)
			if err != nil {
				return nil, fmt.Errorf("%w: leaf hashes %d to %d: %v", ErrAudit, start, start+int64(w)-1, err)
			}
			for i, e := range entries {
				if tlog.Hash(rfc6962.DefaultHasher.HashLeaf(e[:])) != leaves[i] {
					return nil, fmt.Errorf("%w: the entry of leaf %d does not hash to the leaf in the tree", ErrAudit, start+int64(i))
				}
			}
			out.EntriesChecked += uint64(w)
			if opts.Progress != nil {
				opts.Progress(out.EntriesChecked, cp.Size-out.EntriesFrom)
			}
		}
	}
	return out, nil
}

// tileFetcher is a tlog.TileReader over a service's /tile endpoints.
type tileFetcher struct {
	ctx context.Context
	c   *Client
}

func (f tileFetcher) Height() int { return log.TileHeight }

func (f tileFetcher) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		b, err := f.c.get(f.ctx, "/"+log.TilePath(t))
		if err != nil {
			return nil, fmt.Errorf("fetching %s: %w", log.TilePath(t), err)
		}
		out[i] = b
	}
	return out, nil
}

func (tileFetcher) SaveTiles([]tlog.Tile, [][]byte) {}
