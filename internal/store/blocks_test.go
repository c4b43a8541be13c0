package store

import (
	"bytes"
	"context"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// Tables are written in blocks of about 32 KiB, not Pebble's 4 KiB: each
// block a flush or compaction writes is one write system call.
func TestTablesUseLargeBlocks(t *testing.T) {
	s, err := Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.NewBatch()
	for i := range 20000 {
		// Values below blobMinimumSize stay in the table's data blocks.
		b.Set(append([]byte{famKV, 0}, be64(uint64(i))...), bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 150))
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if err := s.Settle(context.Background()); err != nil {
		t.Fatal(err)
	}
	levels, err := s.db.SSTables(pebble.WithProperties())
	if err != nil {
		t.Fatal(err)
	}
	var raw, blocks uint64
	for _, level := range levels {
		for _, tbl := range level {
			raw += tbl.Properties.RawKeySize + tbl.Properties.RawValueSize
			blocks += tbl.Properties.NumDataBlocks
		}
	}
	if blocks == 0 {
		t.Fatal("no data blocks after a flush")
	}
	if avg := raw / blocks; avg < 16<<10 {
		t.Errorf("%d bytes in %d data blocks: %d bytes a block, want about 32 KiB", raw, blocks, avg)
	}
}
