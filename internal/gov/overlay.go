package gov

import (
	"errors"
	"sort"

	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
)

// State is the applied key-value state governance reads.
type State interface {
	GetKV(m string, key []byte) ([]byte, error)
	ScanKV(m string, fn func(key, value []byte) error) error
}

// overlay reads the applied state with this operation's writes on top, and
// records the writes in order: the write set of one governance transaction.
type overlay struct {
	base   State
	writes map[string]map[string]*string // map → key → value (nil: deleted)
	order  []log.Write
}

func newOverlay(base State) *overlay {
	return &overlay{base: base, writes: map[string]map[string]*string{}}
}

// Get returns the value of key in map m.
func (o *overlay) Get(m, key string) (string, bool, error) {
	if mw, ok := o.writes[m]; ok {
		if v, ok := mw[key]; ok {
			if v == nil {
				return "", false, nil
			}
			return *v, true, nil
		}
	}
	v, err := o.base.GetKV(m, []byte(key))
	if errors.Is(err, ledger.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	return string(v), true, nil
}

// Set sets key in map m.
func (o *overlay) Set(m, key, value string) {
	o.record(m, key, &value)
	o.order = append(o.order, log.Write{Map: m, Key: []byte(key), Value: []byte(value)})
}

// Delete deletes key from map m.
func (o *overlay) Delete(m, key string) {
	o.record(m, key, nil)
	o.order = append(o.order, log.Write{Map: m, Key: []byte(key), Delete: true})
}

func (o *overlay) record(m, key string, v *string) {
	mw, ok := o.writes[m]
	if !ok {
		mw = map[string]*string{}
		o.writes[m] = mw
	}
	mw[key] = v
}

// Keys returns the keys of map m, sorted.
func (o *overlay) Keys(m string) ([]string, error) {
	set := map[string]bool{}
	if err := o.base.ScanKV(m, func(k, _ []byte) error { set[string(k)] = true; return nil }); err != nil {
		return nil, err
	}
	for k, v := range o.writes[m] {
		set[k] = v != nil
	}
	var keys []string
	for k, ok := range set {
		if ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// changed reports whether the operation wrote to map m.
func (o *overlay) changed(m string) bool { return len(o.writes[m]) > 0 }

// writeSet is the operation's write set, with claims.
func (o *overlay) writeSet(claims []byte) *log.WriteSet {
	return &log.WriteSet{Writes: o.order, Claims: claims}
}

// GetKV and ScanKV make an overlay the base of a nested one.
func (o *overlay) GetKV(m string, key []byte) ([]byte, error) {
	v, ok, err := o.Get(m, string(key))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ledger.ErrNotFound
	}
	return []byte(v), nil
}

func (o *overlay) ScanKV(m string, fn func(key, value []byte) error) error {
	keys, err := o.Keys(m)
	if err != nil {
		return err
	}
	for _, k := range keys {
		v, _, err := o.Get(m, k)
		if err != nil {
			return err
		}
		if err := fn([]byte(k), []byte(v)); err != nil {
			return err
		}
	}
	return nil
}
