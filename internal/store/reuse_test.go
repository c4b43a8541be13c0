package store_test

import (
	"errors"
	"testing"

	"github.com/charterlog/charter/internal/store"
)

// A BatchReuser's batch comes back empty after each commit: a write of an
// earlier batch is not written again by a later one. One begun while the
// kept batch is out is a batch of its own; an uncommitted one is not kept.
func TestBatchReuser(t *testing.T) {
	s, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := s.NewBatchReuser()
	get := func(key string) string {
		t.Helper()
		v, err := s.Get([]byte(key))
		if errors.Is(err, store.ErrNotFound) {
			return ""
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}

	b := r.Begin(64)
	b.Set([]byte("\xf0a"), []byte("1"))
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close() // a deferred Close after Commit does nothing
	if !r.KeptForTest() {
		t.Fatal("the committed batch was not kept for the next Begin")
	}
	// Overwrite a outside the reuser; the next batch must not bring it back.
	other := s.NewBatch()
	other.Set([]byte("\xf0a"), []byte("2"))
	if err := other.Commit(false); err != nil {
		t.Fatal(err)
	}

	b = r.Begin(64)
	if r.KeptForTest() {
		t.Fatal("the kept batch is still kept while it is out")
	}
	if b.Len() > 12 { // a batch's header alone
		t.Fatalf("the reused batch starts with %d bytes of writes", b.Len())
	}
	overlap := r.Begin(64) // the kept batch is out: a batch of its own
	overlap.Set([]byte("\xf0c"), []byte("3"))
	b.Set([]byte("\xf0b"), []byte("2"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := overlap.Commit(false); err != nil {
		t.Fatal(err)
	}
	if got := [3]string{get("\xf0a"), get("\xf0b"), get("\xf0c")}; got != [3]string{"2", "2", "3"} {
		t.Fatalf("after the reused batch: a, b, c = %q, want 2, 2, 3", got)
	}

	// Taken and closed without a commit: nothing written, nothing kept.
	b = r.Begin(64)
	b.Set([]byte("\xf0d"), []byte("4"))
	b.Close()
	if r.KeptForTest() {
		t.Fatal("an uncommitted batch was kept")
	}
	if get("\xf0d") != "" {
		t.Fatal("an uncommitted batch was written")
	}
	b = r.Begin(64)
	b.Set([]byte("\xf0e"), []byte("5"))
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	if get("\xf0d") != "" || get("\xf0e") != "5" {
		t.Fatalf("d, e = %q, %q after a fresh batch, want \"\", 5", get("\xf0d"), get("\xf0e"))
	}
}
