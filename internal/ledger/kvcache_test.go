package ledger

import (
	"testing"

	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
)

func TestKVCache(t *testing.T) {
	st, err := store.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := newKVCache()
	commit := func(v string) {
		t.Helper()
		b := st.NewBatch()
		view := newBatchView(st, c)
		w := log.Write{Map: "m", Key: []byte("k"), Value: []byte(v), Delete: v == ""}
		if w.Delete {
			b.DeleteKV(w.Map, w.Key)
		} else {
			b.PutKV(w.Map, w.Key, w.Value)
		}
		view.record(w)
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		c.written(view)
	}
	get := func() string {
		t.Helper()
		v, err := c.get(st, "m", []byte("k"))
		if store.IsNotFound(err) {
			return "<absent>"
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}

	if got := get(); got != "<absent>" {
		t.Fatalf("empty store: %q", got)
	}
	commit("1")
	if got := get(); got != "1" {
		t.Fatalf("after writing 1: %q", got)
	}
	// Values are handed out as copies.
	v, _ := c.get(st, "m", []byte("k"))
	v[0] = 'X'
	if got := get(); got != "1" {
		t.Fatalf("a caller changed the cache: %q", got)
	}
	commit("")
	if got := get(); got != "<absent>" {
		t.Fatalf("after the delete: %q", got)
	}

	// A reader that read the store before an apply committed must not
	// cache what it read after.
	c.reset()
	k := cacheKey("other", []byte("k"))
	_, gen, ok := c.lookup(k)
	if ok {
		t.Fatal("cached after reset")
	}
	view := newBatchView(st, c)
	view.record(log.Write{Map: "other", Key: []byte("k"), Value: []byte("new")})
	c.written(view)
	c.fill(k, kvValue{v: []byte("old"), present: true}, gen)
	if e, _, _ := c.lookup(k); string(e.v) != "new" {
		t.Fatalf("stale fill cached: %q", e.v)
	}
}
