package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"

	"github.com/charterlog/charter/internal/store"
	"github.com/charterlog/charter/log"
)

// ErrConflict: an app transaction's reads no longer held when it was
// applied (another transaction changed what it read first). Nothing was
// written; run the request again.
var ErrConflict = errors.New("ledger: the transaction's reads changed before it applied")

// ErrGovernedMap: an app transaction wrote a governed map
// (log.GovernedPrefixes), which only governance and the nodes write.
// Nothing of the transaction was written.
var ErrGovernedMap = errors.New("ledger: an app transaction may not write a governed map")

// checkAppTx validates an app transaction's shape and refuses one that
// writes a governed map. The app runtime enforces the same list on the
// leader (internal/app MapAccess); every node enforces it again when it
// applies the transaction, so that no app host or leader can write
// governance state through an app.
func checkAppTx(t *log.AppTx) error {
	if err := t.Validate(); err != nil {
		return err
	}
	for _, w := range t.Writes {
		if log.IsGoverned(w.Map) {
			return fmt.Errorf("%w: %q", ErrGovernedMap, w.Map)
		}
	}
	return nil
}

// SubmitApp proposes an app transaction and returns its transaction id
// once it is applied, or ErrConflict if its reads no longer held then.
func (l *Ledger) SubmitApp(ctx context.Context, t *log.AppTx) (log.TxID, error) {
	if err := checkAppTx(t); err != nil {
		return log.TxID{}, err
	}
	if len(t.Nonce) == 0 {
		t.Nonce = make([]byte, 16)
		if _, err := rand.Read(t.Nonce); err != nil {
			return log.TxID{}, err
		}
	}
	body, err := log.MarshalAppTx(t)
	if err != nil {
		return log.TxID{}, err
	}
	return l.submit(ctx, log.TxApp, body)
}

// batchView is the key-value state as the Apply call in progress has
// changed it so far: an app transaction's reads are checked against the
// transactions applied before it in the same batch too.
type batchView struct {
	st     *store.Store
	cache  *kvCache
	writes map[string]map[string]*[]byte // map → key → value (nil: deleted)
}

func newBatchView(st *store.Store, cache *kvCache) *batchView {
	return &batchView{st: st, cache: cache, writes: map[string]map[string]*[]byte{}}
}

func (v *batchView) record(w log.Write) {
	m := v.writes[w.Map]
	if m == nil {
		m = map[string]*[]byte{}
		v.writes[w.Map] = m
	}
	if w.Delete {
		m[string(w.Key)] = nil
	} else {
		val := w.Value
		m[string(w.Key)] = &val
	}
}

func (v *batchView) get(m string, key []byte) ([]byte, bool, error) {
	if mw, ok := v.writes[m]; ok {
		if val, ok := mw[string(key)]; ok {
			if val == nil {
				return nil, false, nil
			}
			return *val, true, nil
		}
	}
	val, err := v.cache.get(v.st, m, key)
	if store.IsNotFound(err) {
		return nil, false, nil
	}
	return val, err == nil, err
}

func (v *batchView) mapDigest(m string) ([32]byte, error) {
	var d log.MapDigester
	mw := v.writes[m]
	if len(mw) == 0 {
		err := v.st.ScanKV(m, func(k, val []byte) error { d.Add(k, val); return nil })
		return d.Sum(), err
	}
	merged := map[string][]byte{}
	if err := v.st.ScanKV(m, func(k, val []byte) error { merged[string(k)] = bytes.Clone(val); return nil }); err != nil {
		return [32]byte{}, err
	}
	for k, val := range mw {
		if val == nil {
			delete(merged, k)
		} else {
			merged[k] = *val
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		d.Add([]byte(k), merged[k])
	}
	return d.Sum(), nil
}

// readsHold reports whether every read of t still holds in v.
func (v *batchView) readsHold(t *log.AppTx) (bool, error) {
	for _, r := range t.Reads {
		var got [32]byte
		if r.Scan {
			d, err := v.mapDigest(r.Map)
			if err != nil {
				return false, err
			}
			got = d
		} else {
			val, ok, err := v.get(r.Map, r.Key)
			if err != nil {
				return false, err
			}
			got = log.ValueDigest(val, ok)
		}
		if got != r.Digest {
			return false, nil
		}
	}
	return true, nil
}
