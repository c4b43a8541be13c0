package store

import "github.com/cockroachdb/pebble/v2"

// Key-value maps: family 0x03, then the map name, a zero byte, the key. Map
// names never contain a zero byte, so one map's keys never mix with another's.

// kvPrefix is the key prefix of map m. Map names are constants of this
// program, none with a zero byte.
func kvPrefix(m string) []byte { return append(append([]byte{famKV}, m...), 0) }

func kvKey(m string, key []byte) []byte { return append(kvPrefix(m), key...) }

// PutKV sets key in map m.
func (b *Batch) PutKV(m string, key, value []byte) { b.Set(kvKey(m, key), value) }

// GetKV returns key in map m, or ErrNotFound.
func (s *Store) GetKV(m string, key []byte) ([]byte, error) { return s.Get(kvKey(m, key)) }

// ScanKV calls fn for each key of map m in key order.
func (s *Store) ScanKV(m string, fn func(key, value []byte) error) error {
	p := kvPrefix(m)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key()[len(p):], it.Value()); err != nil {
			return err
		}
	}
	return it.Error()
}

// DeleteKV deletes key from map m.
func (b *Batch) DeleteKV(m string, key []byte) { b.Delete(kvKey(m, key)) }
