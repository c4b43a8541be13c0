package log_test

import (
	"bytes"
	"errors"
	"testing"

	clog "github.com/charterlog/charter/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/tlog"
)

func TestParseTilePath(t *testing.T) {
	for path, want := range map[string]tlog.Tile{
		"tile/0/000":            {H: 8, L: 0, N: 0, W: 256},
		"tile/0/067.p/12":       {H: 8, L: 0, N: 67, W: 12},
		"tile/3/x001/x234/067":  {H: 8, L: 3, N: 1234067, W: 256},
		"tile/63/999":           {H: 8, L: 63, N: 999, W: 256},
		"tile/entries/000.p/1":  {H: 8, L: -1, N: 0, W: 1},
		"tile/entries/x001/273": {H: 8, L: -1, N: 1273, W: 256},
		"tile/1/x123/456.p/255": {H: 8, L: 1, N: 123456, W: 255},
	} {
		got, err := clog.ParseTilePath(path)
		if err != nil || got != want {
			t.Errorf("ParseTilePath(%q) = %+v, %v; want %+v", path, got, err, want)
			continue
		}
		if back := clog.TilePath(got); back != path {
			t.Errorf("TilePath(%+v) = %q, want %q", got, back, path)
		}
	}
	for _, bad := range []string{
		"", "tile", "tile/", "tile/0", "tile/0/", "/tile/0/000", "tiles/0/000",
		"tile/00/000", "tile/-1/000", "tile/64/000", "tile/+1/000", "tile/a/000",
		"tile/0/0", "tile/0/0000", "tile/0/x000/067", "tile/0/001/002", "tile/0/x01/002",
		"tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/012", "tile/0/000.p/", "tile/0/000.p",
		"tile/data/000", "tile/8/0/000", "tile/entries/", "tile/entries/000/", "tile/0/000?x",
	} {
		if tile, err := clog.ParseTilePath(bad); !errors.Is(err, clog.ErrBadTilePath) {
			t.Errorf("ParseTilePath(%q) = %+v, %v; want ErrBadTilePath", bad, tile, err)
		}
	}
}

// The example of c2sp.org/tlog-tiles: "a tree of size 70,000 will be
// represented by 273 full level 0 tiles, one partial level 0 tile of width
// 112, one full level 1 tile, one partial level 1 tile of width 17, and one
// partial level 2 tile of width 1"; "a tree of size 256 will be represented
// by a full level 0 tile and a partial level 1 tile of width 1".
func TestTileWithin(t *testing.T) {
	tile := func(l int, n int64, w int) tlog.Tile { return tlog.Tile{H: 8, L: l, N: n, W: w} }
	for _, c := range []struct {
		size int64
		t    tlog.Tile
		want bool
	}{
		{70000, tile(0, 272, 256), true},
		{70000, tile(0, 273, 256), false},
		{70000, tile(0, 273, 112), true},
		{70000, tile(0, 273, 113), false},
		{70000, tile(-1, 273, 112), true},
		{70000, tile(-1, 273, 113), false},
		{70000, tile(1, 0, 256), true},
		{70000, tile(1, 1, 17), true},
		{70000, tile(1, 1, 18), false},
		{70000, tile(2, 0, 1), true},
		{70000, tile(2, 0, 2), false},
		{70000, tile(3, 0, 1), false},
		{256, tile(0, 0, 256), true},
		{256, tile(1, 0, 1), true},
		{256, tile(1, 0, 2), false},
		{0, tile(0, 0, 1), false},
		{1 << 62, tile(7, 0, 64), true},
		{1 << 62, tile(7, 0, 65), false},
		{1 << 62, tile(8, 0, 1), false},
		{1 << 62, tile(0, 1<<60, 1), false},
		{1 << 62, tile(0, -1, 1), false},
		{100, tile(0, 0, 0), false},
	} {
		if got := clog.TileWithin(c.t, c.size); got != c.want {
			t.Errorf("TileWithin(%+v, %d) = %v, want %v", c.t, c.size, got, c.want)
		}
	}
}

// tileSource serves a tree's tiles to tlog as a client would fetch them,
// refusing tiles beyond the tree size it was made for.
type tileSource struct {
	t    *testing.T
	tree *clog.Tree
	size int64
}

func (s tileSource) Height() int { return clog.TileHeight }

func (s tileSource) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, tile := range tiles {
		if !clog.TileWithin(tile, s.size) {
			s.t.Fatalf("a client of a tree of size %d asked for %s", s.size, clog.TilePath(tile))
		}
		data, err := s.tree.ReadTile(tile)
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (tileSource) SaveTiles([]tlog.Tile, [][]byte) {}

// Tiles are proved against the tree's root by tlog's own client (which
// checks every tile it loads against the tree hash), for trees with full,
// partial and multi-level tiles; the level-0 tiles hold the leaf hashes.
func TestReadTileProvesAgainstRoot(t *testing.T) {
	const n = 70000
	tr, _, leaves := buildTree(t, n)
	for _, size := range []int64{1, 255, 256, 257, 65536, 65537, 70000} {
		root, err := tr.Root(size)
		if err != nil {
			t.Fatal(err)
		}
		hr := tlog.TileHashReader(tlog.Tree{N: size, Hash: root}, tileSource{t, tr, size})
		got, err := tlog.TreeHash(size, hr)
		if err != nil || got != root {
			t.Fatalf("size %d: tree hash from tiles %x, %v; want %x", size, got, err, root)
		}
		for _, i := range []int64{0, size / 2, size - 1} {
			p, err := tlog.ProveRecord(size, i, hr)
			if err != nil {
				t.Fatalf("size %d: proving %d from tiles: %v", size, i, err)
			}
			if err := tlog.CheckRecord(p, size, root, i, tlog.Hash(leaves[i])); err != nil {
				t.Fatalf("size %d: proof of %d from tiles: %v", size, i, err)
			}
		}
	}
	// A level-0 tile is the leaf hashes, in order.
	data, err := tr.ReadTile(tlog.Tile{H: 8, L: 0, N: 273, W: 112})
	if err != nil {
		t.Fatal(err)
	}
	if want := bytes.Join(leaves[273*256:n], nil); !bytes.Equal(data, want) {
		t.Fatal("level-0 tile 273 is not leaves 69888..69999")
	}
	for _, bad := range []tlog.Tile{{H: 8, L: 0, N: 273, W: 113}, {H: 8, L: 2, N: 0, W: 2}, {H: 8, L: -1, N: 0, W: 1}} {
		if _, err := tr.ReadTile(bad); err == nil {
			t.Errorf("ReadTile(%s) of a tree of %d leaves succeeded", clog.TilePath(bad), n)
		}
	}
}

func TestEntryBundle(t *testing.T) {
	entries := [][32]byte{entryOf(0), entryOf(1), entryOf(2)}
	b := clog.EntryBundle(entries)
	if len(b) != 3*34 || b[0] != 0 || b[1] != 32 {
		t.Fatalf("bundle of %d bytes starting %x", len(b), b[:2])
	}
	got, err := clog.ParseEntryBundle(b)
	if err != nil || len(got) != 3 || got[2] != entries[2] {
		t.Fatalf("ParseEntryBundle: %v, %v", got, err)
	}
	// Each entry hashes to its leaf: RFC 6962 leaf hash of the entry.
	if h := rfc6962.DefaultHasher.HashLeaf(got[1][:]); !bytes.Equal(h, rfc6962.DefaultHasher.HashLeaf(entries[1][:])) {
		t.Fatal("leaf hash mismatch")
	}
	for i := range len(b) {
		if _, err := clog.ParseEntryBundle(b[:i]); i%34 != 0 && err == nil {
			t.Errorf("a bundle cut at %d bytes parsed", i)
		}
	}
	bad := bytes.Clone(b)
	bad[1] = 31
	if _, err := clog.ParseEntryBundle(bad); err == nil {
		t.Error("an entry of 31 bytes parsed")
	}
}

func FuzzParseTilePath(f *testing.F) {
	for _, s := range []string{"tile/0/000", "tile/0/067.p/12", "tile/3/x001/x234/067", "tile/entries/x001/273.p/9", "tile/00/000", "tile/0/x000/067"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		tile, err := clog.ParseTilePath(path)
		if err != nil {
			return
		}
		if back := clog.TilePath(tile); back != path {
			t.Fatalf("%q parsed as %+v, which formats as %q", path, tile, back)
		}
		if tile.H != 8 || tile.L < -1 || tile.L > 63 || tile.N < 0 || tile.W < 1 || tile.W > 256 {
			t.Fatalf("%q parsed as out-of-range %+v", path, tile)
		}
	})
}

// FuzzParseEntryBundle: any bytes give entries that re-encode to the
// same bytes, or an error; never a panic.
func FuzzParseEntryBundle(f *testing.F) {
	f.Add(clog.EntryBundle([][32]byte{entryOf(0), entryOf(1)}))
	f.Add([]byte{0, 32})
	f.Add([]byte{0, 31, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := clog.ParseEntryBundle(b)
		if err != nil {
			return
		}
		if again := clog.EntryBundle(entries); !bytes.Equal(again, b) {
			t.Fatalf("%x parsed into %d entries that encode as %x", b, len(entries), again)
		}
	})
}
