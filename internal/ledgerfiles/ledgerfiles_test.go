package ledgerfiles

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/charterlog/charter/log"
)

func record(t testing.TB, seqno uint64) []byte {
	t.Helper()
	b, err := log.MarshalRecord(&log.Record{Type: log.TxRegistration, View: 1, Seqno: seqno, Body: []byte(fmt.Sprintf("statement %d", seqno))})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func write(t *testing.T, w *Writer, from, to uint64) {
	t.Helper()
	for s := from; s <= to; s++ {
		if err := w.Append(s, record(t, s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func scanAll(t *testing.T, dir string) (uint64, error) {
	t.Helper()
	return Scan(dir, func(seqno uint64, raw []byte) error {
		if !bytes.Equal(raw, record(t, seqno)) {
			return fmt.Errorf("transaction %d differs", seqno)
		}
		return nil
	})
}

func TestWriteScanResume(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, 1, 250)
	got := strings.Join(names(t, dir), " ")
	if got != "ledger_1-100.committed ledger_101-200.committed ledger_201" {
		t.Fatalf("chunks: %s", got)
	}
	if last, err := scanAll(t, dir); err != nil || last != 250 {
		t.Fatalf("scan: %d, %v", last, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = OpenWriter(dir, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if w.Next() != 251 {
		t.Fatalf("resumed at %d, want 251", w.Next())
	}
	if err := w.Append(260, record(t, 260)); err == nil {
		t.Fatal("a record out of order was appended")
	}
	write(t, w, 251, 300)
	w.Close()
	if got := strings.Join(names(t, dir), " "); got != "ledger_1-100.committed ledger_101-200.committed ledger_201-300.committed" {
		t.Fatalf("chunks: %s", got)
	}
	if last, err := scanAll(t, dir); err != nil || last != 300 {
		t.Fatalf("scan: %d, %v", last, err)
	}
}

// A crash leaves the open chunk with a torn tail, or complete but not yet
// renamed; the writer resumes from either, and nothing it had synced is
// lost.
func TestResumeAfterCrash(t *testing.T) {
	t.Run("torn tail", func(t *testing.T) {
		dir := t.TempDir()
		w, _ := OpenWriter(dir, 0, 100)
		write(t, w, 1, 120)
		w.Close()
		open := filepath.Join(dir, "ledger_101")
		f, _ := os.OpenFile(open, os.O_APPEND|os.O_WRONLY, 0)
		f.Write(append([]byte{200, 1}, record(t, 121)[:10]...)) // half a frame
		f.Close()
		w, err := OpenWriter(dir, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if w.Next() != 121 {
			t.Fatalf("resumed at %d, want 121", w.Next())
		}
		write(t, w, 121, 200)
		w.Close()
		if last, err := scanAll(t, dir); err != nil || last != 200 {
			t.Fatalf("scan: %d, %v", last, err)
		}
	})
	t.Run("complete, not renamed", func(t *testing.T) {
		dir := t.TempDir()
		w, _ := OpenWriter(dir, 0, 100)
		write(t, w, 1, 100)
		// Undo the rename: the crash came between the synced trailer and it.
		if err := os.Rename(filepath.Join(dir, "ledger_1-100.committed"), filepath.Join(dir, "ledger_1")); err != nil {
			t.Fatal(err)
		}
		w, err := OpenWriter(dir, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if w.Next() != 101 || strings.Join(names(t, dir), " ") != "ledger_1-100.committed" {
			t.Fatalf("resumed at %d with %v", w.Next(), names(t, dir))
		}
	})
	t.Run("torn header", func(t *testing.T) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "ledger_1"), []byte("CHARTER-LE"), 0o644)
		w, err := OpenWriter(dir, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		write(t, w, 1, 5)
		w.Close()
		if last, err := scanAll(t, dir); err != nil || last != 5 {
			t.Fatalf("scan: %d, %v", last, err)
		}
	})
}

// Each kind of damage to a backup is found, and said as what it is.
func TestScanFindsDamage(t *testing.T) {
	fresh := func(t *testing.T) string {
		dir := t.TempDir()
		w, _ := OpenWriter(dir, 0, 100)
		write(t, w, 1, 300)
		w.Close()
		return dir
	}
	chunk := func(dir string) string { return filepath.Join(dir, "ledger_101-200.committed") }
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   error
		says   string
	}{
		{"flipped byte", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(chunk(dir))
			b[len(b)/2] ^= 1
			os.WriteFile(chunk(dir), b, 0o644)
		}, ErrDamaged, "ledger_101-200.committed"},
		{"truncated chunk", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(chunk(dir))
			os.WriteFile(chunk(dir), b[:len(b)-40], 0o644)
		}, ErrTruncated, "ledger_101-200.committed"},
		{"removed chunk", func(t *testing.T, dir string) {
			os.Remove(chunk(dir))
		}, ErrGap, "101 to 200"},
		{"first chunk removed", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, "ledger_1-100.committed"))
		}, ErrGap, "1 to 100"},
		{"renamed to hide a removed transaction", func(t *testing.T, dir string) {
			os.Rename(chunk(dir), filepath.Join(dir, "ledger_101-199.committed"))
			os.Rename(filepath.Join(dir, "ledger_201-300.committed"), filepath.Join(dir, "ledger_200-300.committed"))
		}, ErrGap, "its name says"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := fresh(t)
			c.damage(t, dir)
			_, err := scanAll(t, dir)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("got %v; want %v naming %q", err, c.want, c.says)
			}
		})
	}
	if _, err := Scan(t.TempDir(), func(uint64, []byte) error { return nil }); !errors.Is(err, ErrNoLedger) {
		t.Fatalf("empty directory: %v", err)
	}
}

func FuzzReadChunk(f *testing.F) {
	dir := f.TempDir()
	w, _ := OpenWriter(dir, 0, 3)
	for s := uint64(1); s <= 4; s++ {
		w.Append(s, record(f, s))
	}
	w.Close()
	for _, n := range []string{"ledger_1-3.committed", "ledger_4"} {
		b, _ := os.ReadFile(filepath.Join(dir, n))
		f.Add(b, n == "ledger_4")
	}
	f.Fuzz(func(t *testing.T, b []byte, open bool) {
		path := filepath.Join(t.TempDir(), "c")
		os.WriteFile(path, b, 0o644)
		c := Chunk{Path: path, First: 1, Last: 3, Committed: !open}
		_, _, _ = readChunk(c, func(uint64, []byte) error { return nil })
	})
}

// BenchmarkScan reads and checks a ledger of 1 KiB transactions from
// chunk files (the files are in the page cache, as after a download).
func BenchmarkScan(b *testing.B) {
	dir := b.TempDir()
	w, err := OpenWriter(dir, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	const n = 50_000
	body := bytes.Repeat([]byte{'x'}, 1024)
	for s := uint64(1); s <= n; s++ {
		raw, _ := log.MarshalRecord(&log.Record{Type: log.TxRegistration, View: 1, Seqno: s, Body: body})
		if err := w.Append(s, raw); err != nil {
			b.Fatal(err)
		}
	}
	w.Close()
	b.ResetTimer()
	for range b.N {
		if last, err := Scan(dir, func(uint64, []byte) error { return nil }); err != nil || last != n {
			b.Fatal(last, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "tx/s")
}

// memSource is a ledger in memory that grows when the test says.
type memSource struct {
	t    testing.TB
	mu   chan struct{} // a one-slot lock
	size uint64
	grew chan struct{}
	// told is the last seqno Follow reported synced; backwards is set if
	// a report went back.
	told      atomic.Uint64
	backwards atomic.Bool
}

func (m *memSource) FilesSynced(seqno uint64) {
	if m.told.Swap(seqno) > seqno {
		m.backwards.Store(true)
	}
}

func newMemSource(t testing.TB) *memSource {
	return &memSource{t: t, mu: make(chan struct{}, 1), grew: make(chan struct{})}
}

func (m *memSource) grow(n uint64) {
	m.mu <- struct{}{}
	m.size += n
	close(m.grew)
	m.grew = make(chan struct{})
	<-m.mu
}

func (m *memSource) Size() uint64 {
	m.mu <- struct{}{}
	defer func() { <-m.mu }()
	return m.size
}

func (m *memSource) WaitApplied(ctx context.Context, size uint64) error {
	for {
		m.mu <- struct{}{}
		ok, ch := m.size >= size, m.grew
		<-m.mu
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (m *memSource) ScanRecords(from, to uint64, fn func(uint64, []byte) error) error {
	for s := from; s <= to; s++ {
		if err := fn(s, record(m.t, s)); err != nil {
			return err
		}
	}
	return nil
}

func TestFollow(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	src := newMemSource(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Follow(ctx, w, src) }()
	src.grow(150)
	src.grow(60)
	// Follow owns w while it runs; the files show its progress.
	deadline := time.Now().Add(10 * time.Second)
	for {
		last, err := Scan(dir, func(uint64, []byte) error { return nil })
		if err == nil && last == 210 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("files hold %d transactions (%v), want 210", last, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.Close()
	if last, err := scanAll(t, dir); err != nil || last != 210 {
		t.Fatalf("scan: %d, %v", last, err)
	}
	if src.told.Load() != 210 || src.backwards.Load() {
		t.Fatalf("Follow last told the source the files hold %d (want 210); went backwards: %v", src.told.Load(), src.backwards.Load())
	}
}
