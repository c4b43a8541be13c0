package ledgerfiles

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/charterlog/charter/log"
)

// readAll reads from..to with r and checks each record against record(),
// or want(seqno) if given.
func readAll(t testing.TB, r *Reader, from, to uint64, want func(uint64) []byte) error {
	t.Helper()
	if want == nil {
		want = func(s uint64) []byte { return record(t, s) }
	}
	next := from
	err := r.ReadRecords(from, to, func(seqno uint64, raw []byte) error {
		if seqno != next {
			return fmt.Errorf("got transaction %d, want %d", seqno, next)
		}
		if !bytes.Equal(raw, want(seqno)) {
			return fmt.Errorf("transaction %d differs", seqno)
		}
		next++
		return nil
	})
	if err == nil && next != to+1 && to >= from {
		return fmt.Errorf("read %d to %d, asked %d to %d", from, next-1, from, to)
	}
	return err
}

func TestReaderReads(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Every 97th record is larger than the Reader's buffer.
	want := func(s uint64) []byte {
		if s%97 != 0 {
			return record(t, s)
		}
		b, err := log.MarshalRecord(&log.Record{Type: log.TxRegistration, View: 1, Seqno: s, Body: bytes.Repeat([]byte{byte(s)}, readBuffer+int(s))})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const n = 1037
	for s := uint64(1); s <= n; s++ {
		if err := w.Append(s, want(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(t, dir), " "); strings.Count(got, ".committed") != 10 || !strings.Contains(got, "ledger_1001 ") {
		t.Fatalf("chunks: %v", got)
	}

	r := NewReader(dir)
	// Out of order, so that reads find the index both built and not.
	for _, s := range rand.New(rand.NewPCG(1, 2)).Perm(n) {
		if err := readAll(t, r, uint64(s)+1, uint64(s)+1, want); err != nil {
			t.Fatal(err)
		}
	}
	for _, span := range [][2]uint64{{1, n}, {95, 105}, {199, 402}, {1000, n}, {63, 65}, {64, 64}, {128, 129}, {100, 101}} {
		// A fresh Reader too: ranges that build the index as they go.
		for _, r := range []*Reader{r, NewReader(dir)} {
			if err := readAll(t, r, span[0], span[1], want); err != nil {
				t.Fatalf("%d to %d: %v", span[0], span[1], err)
			}
		}
	}

	// The index: one offset per indexEvery frames, no more kept.
	for _, ci := range r.byFirst {
		if want := int((ci.next - ci.first + indexEvery - 1) / indexEvery); len(ci.offs) != want || ci.complete && cap(ci.offs) != want {
			t.Errorf("chunk %d: %d frames indexed with %d offsets (room for %d), want %d", ci.first, ci.next-ci.first, len(ci.offs), cap(ci.offs), want)
		}
	}

	called := false
	if err := r.ReadRecords(10, 9, func(uint64, []byte) error { called = true; return nil }); err != nil || called {
		t.Fatalf("an empty range: %v, fn called: %v", err, called)
	}
	stop := errors.New("stop")
	if err := r.ReadRecords(1, n, func(s uint64, _ []byte) error {
		if s == 150 {
			return stop
		}
		return nil
	}); err != stop {
		t.Fatalf("fn's error: got %v", err)
	}
}

// What is not whole in the files is an error, never data.
func TestReaderRefusesWhatIsNotThere(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, 1, 150)
	r := NewReader(dir)
	if err := readAll(t, r, 1, 150, nil); err != nil {
		t.Fatal(err)
	}
	notThere := func(from, to, missing uint64) {
		t.Helper()
		err := readAll(t, r, from, to, nil)
		if !errors.Is(err, ErrGap) || !strings.Contains(err.Error(), fmt.Sprintf("transaction %d ", missing)) {
			t.Fatalf("reading %d to %d: got %v; want ErrGap naming %d", from, to, err, missing)
		}
	}
	notThere(151, 151, 151)
	notThere(140, 160, 151)
	notThere(0, 3, 0)
	notThere(1_000_000, 1_000_000, 1_000_000)

	// Appended, not yet out of the Writer's buffer.
	if err := w.Append(151, record(t, 151)); err != nil {
		t.Fatal(err)
	}
	notThere(151, 151, 151)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := readAll(t, r, 151, 151, nil); err != nil {
		t.Fatal(err)
	}

	// A torn tail: 151 cut in half, as a crash leaves it.
	open := filepath.Join(dir, "ledger_101")
	fi, err := os.Stat(open)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(open, fi.Size()-int64(len(record(t, 151)))/2); err != nil {
		t.Fatal(err)
	}
	r = NewReader(dir)
	notThere(151, 151, 151)
	notThere(145, 155, 151)
	// The Reader that read 151 before: its index says 151 is there.
	if err := readAll(t, r, 151, 151, nil); err == nil {
		t.Fatal("read 151 from a torn tail")
	}

	// A length no record has, where 151 belongs.
	_, good, err := readChunk(Chunk{Path: open, First: 101}, func(uint64, []byte) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(open, good); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(open, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(append(binary.AppendUvarint(nil, maxRecord+1), "not a record"...))
	f.Close()
	r = NewReader(dir)
	if err := readAll(t, r, 150, 151, nil); !errors.Is(err, ErrDamaged) {
		t.Fatalf("an impossible length: %v", err)
	}
}

// A file that is not what its name says is found out, not read from.
func TestReaderChecksSeqnos(t *testing.T) {
	dir := t.TempDir()
	w, _ := OpenWriter(dir, 0, 100)
	write(t, w, 1, 200)
	w.Close()
	os.Remove(filepath.Join(dir, "ledger_1-100.committed"))
	os.Rename(filepath.Join(dir, "ledger_101-200.committed"), filepath.Join(dir, "ledger_1-100.committed"))
	r := NewReader(dir)
	for _, s := range []uint64{1, 5, 64, 70, 100} {
		if err := readAll(t, r, s, s, nil); !errors.Is(err, ErrGap) || !strings.Contains(err.Error(), fmt.Sprintf("transaction %d", s)) || !strings.Contains(err.Error(), "belongs") {
			t.Fatalf("reading %d: %v", s, err)
		}
	}
}

// A Reader made before there are files finds them when they come, and
// follows the open chunk through its rename.
func TestReaderFindsNewChunks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ledger")
	r := NewReader(dir)
	if err := readAll(t, r, 1, 1, nil); !errors.Is(err, ErrGap) {
		t.Fatalf("no directory: %v", err)
	}
	w, err := OpenWriter(dir, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	if err := readAll(t, r, 1, 1, nil); !errors.Is(err, ErrGap) {
		t.Fatalf("empty directory: %v", err)
	}
	write(t, w, 1, 30)
	if err := readAll(t, r, 1, 30, nil); err != nil {
		t.Fatal(err)
	}
	// ledger_1 becomes ledger_1-50.committed, and ledger_51 comes.
	write(t, w, 31, 80)
	for _, s := range []uint64{45, 50, 75, 31, 51} {
		if err := readAll(t, r, s, s, nil); err != nil {
			t.Fatalf("%d: %v", s, err)
		}
	}
	if err := readAll(t, r, 1, 80, nil); err != nil {
		t.Fatal(err)
	}
	w.Close()

	// A chunk complete but not renamed (a crash between): the Reader
	// reads it under its open name and sees its end.
	dir = t.TempDir()
	w, _ = OpenWriter(dir, 0, 50)
	write(t, w, 1, 50)
	os.Rename(filepath.Join(dir, "ledger_1-50.committed"), filepath.Join(dir, "ledger_1"))
	r = NewReader(dir)
	if err := readAll(t, r, 1, 50, nil); err != nil {
		t.Fatal(err)
	}
	if err := readAll(t, r, 51, 51, nil); !errors.Is(err, ErrGap) {
		t.Fatalf("past the trailer: %v", err)
	}
	w, err = OpenWriter(dir, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, 51, 60)
	w.Close()
	if err := readAll(t, r, 40, 60, nil); err != nil {
		t.Fatal(err)
	}

	// A listing that races with the rename may show both names.
	if err := os.Link(filepath.Join(dir, "ledger_1-50.committed"), filepath.Join(dir, "ledger_1")); err != nil {
		t.Fatal(err)
	}
	if err := readAll(t, NewReader(dir), 1, 60, nil); err != nil {
		t.Fatal(err)
	}
}

// Readers read what the Writer has synced while it appends, completing
// and renaming chunks under them.
func TestReaderConcurrent(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(dir, 0, 40)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3000
	recs := make([][]byte, n+1)
	for s := uint64(1); s <= n; s++ {
		recs[s] = record(t, s)
	}
	want := func(s uint64) []byte { return recs[s] }

	r := NewReader(dir)
	var done atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for !done.Load() {
				hi := w.Synced()
				if hi == 0 {
					continue
				}
				var from, to uint64
				switch rng.IntN(4) {
				case 0: // the newest: in the open chunk, or one just renamed
					from, to = hi, hi
				case 1: // a range up to the newest
					from, to = hi-min(hi-1, uint64(rng.IntN(100))), hi
				default:
					from = 1 + rng.Uint64N(hi)
					to = from
				}
				if err := readAll(t, r, from, to, want); err != nil {
					errs <- fmt.Errorf("reading %d to %d with %d synced: %w", from, to, hi, err)
					return
				}
				reads.Add(1)
			}
		}()
	}
	for s := uint64(1); s <= n; s++ {
		if err := w.Append(s, recs[s]); err != nil {
			t.Fatal(err)
		}
		if s%7 == 0 {
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	w.Close()
	done.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d reads", reads.Load())
	if reads.Load() < 100 {
		t.Fatalf("only %d reads while writing", reads.Load())
	}
	if err := readAll(t, r, 1, n, want); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkReaderRandom reads single random records of 1 KiB from three
// chunks (in the page cache): warm with the index built, cold with a new
// Reader for each read (a listing and a scan up to the record).
func BenchmarkReaderRandom(b *testing.B) {
	dir := b.TempDir()
	const n, perChunk = 50_000, 20_000
	w, err := OpenWriter(dir, 0, perChunk)
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte{'x'}, 1024)
	for s := uint64(1); s <= n; s++ {
		raw, _ := log.MarshalRecord(&log.Record{Type: log.TxRegistration, View: 1, Seqno: s, Body: body})
		if err := w.Append(s, raw); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	read := func(r *Reader, s uint64) {
		err := r.ReadRecords(s, s, func(seqno uint64, raw []byte) error {
			if len(raw) < 1024 {
				return fmt.Errorf("transaction %d of %d bytes", seqno, len(raw))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Run("warm", func(b *testing.B) {
		r := NewReader(dir)
		read(r, n) // builds the index of every chunk
		for s := uint64(perChunk); s < n; s += perChunk {
			read(r, s)
		}
		rng := rand.New(rand.NewPCG(1, 2))
		b.ResetTimer()
		for range b.N {
			read(r, 1+rng.Uint64N(n))
		}
	})
	b.Run("cold", func(b *testing.B) {
		rng := rand.New(rand.NewPCG(1, 2))
		for range b.N {
			read(NewReader(dir), 1+rng.Uint64N(n))
		}
	})
}

// A committed chunk cut short is said to be, not mistaken for one whose
// records are yet to come.
func TestReaderTruncatedChunk(t *testing.T) {
	dir := t.TempDir()
	w, _ := OpenWriter(dir, 0, 100)
	write(t, w, 1, 200)
	w.Close()
	chunk := filepath.Join(dir, "ledger_101-200.committed")
	fi, err := os.Stat(chunk)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(chunk, fi.Size()/2); err != nil {
		t.Fatal(err)
	}
	r := NewReader(dir)
	if err := readAll(t, r, 101, 120, nil); err != nil {
		t.Fatal(err)
	}
	if err := readAll(t, r, 190, 190, nil); !errors.Is(err, ErrTruncated) {
		t.Fatalf("reading past the cut: %v", err)
	}
	if err := readAll(t, r, 1, 100, nil); err != nil {
		t.Fatal(err)
	}
}

// Whatever an open chunk holds, the Reader returns no record that
// parseChunk, reading it whole, would not.
func FuzzReader(f *testing.F) {
	dir := f.TempDir()
	w, _ := OpenWriter(dir, 0, 3)
	for s := uint64(1); s <= 5; s++ {
		w.Append(s, record(f, s))
	}
	w.Close()
	for _, n := range []string{"ledger_1-3.committed", "ledger_4"} {
		b, _ := os.ReadFile(filepath.Join(dir, n))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "ledger_1")
		os.WriteFile(path, b, 0o644)
		var want [][]byte
		parseChunk(Chunk{Path: path, First: 1}, func(_ uint64, raw []byte) error {
			want = append(want, bytes.Clone(raw))
			return nil
		})
		r := NewReader(dir)
		for s := uint64(1); s <= 5; s++ {
			r.ReadRecords(s, 5, func(seqno uint64, raw []byte) error {
				if seqno > uint64(len(want)) || !bytes.Equal(raw, want[seqno-1]) {
					t.Fatalf("the Reader returned transaction %d, which parseChunk does not", seqno)
				}
				return nil
			})
		}
	})
}
