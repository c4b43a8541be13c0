package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// C2SP tlog-tiles (https://c2sp.org/tlog-tiles): the tree served as tiles
// of 256 consecutive hashes, and the leaves' entries as bundles. Charter's
// stored hashes are tlog's, so a tile is one batched read of them.
//
// Paths are tlog's tile coordinate paths without the height (always 8) and
// with "entries" for tlog's "data" level: "tile/<L>/<N>[.p/<W>]" and
// "tile/entries/<N>[.p/<W>]". A tile here is a tlog.Tile with H 8; an entry
// bundle is one with L -1.

// TileHeight is the height of every tile: "Full tiles MUST be exactly 256
// hashes wide".
const TileHeight = 8

// ErrBadTilePath is a path that is not a canonical tile or entry-bundle
// path.
var ErrBadTilePath = errors.New("log: not a tile path")

// ParseTilePath parses a tile or entry-bundle path (see above), which must
// be canonical: "<L> MUST be a decimal ASCII integer between 0 and 63, with
// no additional leading zeroes"; N in zero-padded 3-digit elements, all but
// the last beginning with "x"; "<W> … between 1 and 255, with no additional
// leading zeroes".
func ParseTilePath(path string) (tlog.Tile, error) {
	rest, ok := strings.CutPrefix(path, "tile/")
	if !ok || strings.HasPrefix(rest, "data/") {
		return tlog.Tile{}, fmt.Errorf("%w: %q", ErrBadTilePath, path)
	}
	if r, ok := strings.CutPrefix(rest, "entries/"); ok {
		rest = "data/" + r
	}
	// tlog's parser insists on its canonical form (it formats the tile
	// back and compares), which is the C2SP form with the height added.
	t, err := tlog.ParseTilePath("tile/8/" + rest)
	if err != nil || t.L > 63 {
		return tlog.Tile{}, fmt.Errorf("%w: %q", ErrBadTilePath, path)
	}
	return t, nil
}

// TilePath is the path of tile t (H must be TileHeight).
func TilePath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), "tile/8/")
	if r, ok := strings.CutPrefix(p, "data/"); ok {
		p = "entries/" + r
	}
	return "tile/" + p
}

// TileWithin reports whether every hash of tile t (or every entry of the
// bundle, L -1) lies within a tree of treeSize leaves. A tile's hashes at
// level L span W·256^L leaves from N·256^(L+1).
func TileWithin(t tlog.Tile, treeSize int64) bool {
	if t.H != TileHeight || t.W < 1 || t.W > 1<<TileHeight || t.N < 0 || treeSize < 0 {
		return false
	}
	level := max(t.L, 0) * TileHeight
	if level >= 63 {
		return false // one hash spans more leaves than any tree has
	}
	units := treeSize >> level // whole level-L hashes in the tree
	if t.N > units>>TileHeight {
		return false
	}
	return t.N<<TileHeight+int64(t.W) <= units
}

// ReadTile returns tile t (L ≥ 0) of the tree as C2SP serves it: the W
// hashes concatenated. The tile must lie within the tree (TileWithin).
func (t *Tree) ReadTile(tile tlog.Tile) ([]byte, error) {
	if tile.L < 0 || !TileWithin(tile, t.Size()) {
		return nil, fmt.Errorf("log: tile %s is not within a tree of size %d", TilePath(tile), t.Size())
	}
	return tlog.ReadTileData(tile, t)
}

// EntryBundle encodes leaf entries as a C2SP entry bundle: "sequences of
// big-endian uint16 length-prefixed log entries". Each leaf's entry is the
// 32-byte digest whose RFC 6962 leaf hash is in the tree.
func EntryBundle(entries [][32]byte) []byte {
	b := make([]byte, 0, len(entries)*(2+32))
	for _, e := range entries {
		b = binary.BigEndian.AppendUint16(b, 32)
		b = append(b, e[:]...)
	}
	return b
}

// ParseEntryBundle splits an entry bundle into its entries, each of which
// must be a 32-byte leaf entry.
func ParseEntryBundle(b []byte) ([][32]byte, error) {
	var out [][32]byte
	for len(b) > 0 {
		if len(b) < 2 {
			return nil, errors.New("log: entry bundle: truncated length")
		}
		n := binary.BigEndian.Uint16(b)
		if n != 32 || len(b) < 2+32 {
			return nil, fmt.Errorf("log: entry bundle: entry %d of %d bytes (remaining %d), want 32", len(out), n, len(b)-2)
		}
		out = append(out, [32]byte(b[2:34]))
		b = b[34:]
	}
	return out, nil
}
