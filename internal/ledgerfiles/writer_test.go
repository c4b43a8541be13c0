package ledgerfiles

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/charterlog/charter/log"
)

// Synced counts only what an fsync covered: not what Append buffered, nor
// what reached the file without a sync; and after OpenWriter, what the
// files hold up to their last complete record.
func TestSynced(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Synced(); got != 0 {
		t.Fatalf("empty: Synced %d", got)
	}
	for s := uint64(1); s <= 5; s++ {
		if err := w.Append(s, record(t, s)); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.Synced(); got != 0 {
		t.Fatalf("appended 1 to 5, not synced: Synced %d", got)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := w.Synced(); got != 5 {
		t.Fatalf("synced 1 to 5: Synced %d", got)
	}

	// A record larger than the write buffer goes straight to the file:
	// written, but not synced.
	big, err := log.MarshalRecord(&log.Record{Type: log.TxRegistration, View: 1, Seqno: 6, Body: bytes.Repeat([]byte{'x'}, 2*writeBuffer)})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(6, big); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "ledger_1"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < int64(len(big)) {
		t.Fatalf("the large record is not in the file (%d bytes): the test proves nothing", fi.Size())
	}
	if got := w.Synced(); got != 5 {
		t.Fatalf("6 written, not synced: Synced %d", got)
	}

	// Completing a chunk syncs it.
	for s := uint64(7); s <= 13; s++ {
		if err := w.Append(s, record(t, s)); err != nil {
			t.Fatal(err)
		}
	}
	if got := w.Synced(); got != 10 {
		t.Fatalf("chunk 1-10 completed, 11 to 13 appended: Synced %d", got)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := w.Synced(); got != 13 {
		t.Fatalf("closed after 13: Synced %d", got)
	}

	// Reopened: what the files hold, less a torn tail.
	f, err := os.OpenFile(filepath.Join(dir, "ledger_11"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	torn := record(t, 14)
	f.Write(append([]byte{byte(len(torn))}, torn[:len(torn)/2]...))
	f.Close()
	w, err = OpenWriter(dir, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, next := w.Synced(), w.Next(); got != 13 || next != 14 {
		t.Fatalf("reopened with a torn 14: Synced %d, Next %d", got, next)
	}
	write(t, w, 14, 20)
	w.Close()
	w, err = OpenWriter(dir, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Synced(); got != 20 {
		t.Fatalf("reopened after 20 (all in committed chunks): Synced %d", got)
	}
	w.Close()

	// A chunk left complete but not renamed counts once renamed.
	dir = t.TempDir()
	w, _ = OpenWriter(dir, 0, 10)
	write(t, w, 1, 10)
	if err := os.Rename(filepath.Join(dir, "ledger_1-10.committed"), filepath.Join(dir, "ledger_1")); err != nil {
		t.Fatal(err)
	}
	w, err = OpenWriter(dir, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Synced(); got != 10 {
		t.Fatalf("reopened with 1-10 complete, not renamed: Synced %d", got)
	}
}
