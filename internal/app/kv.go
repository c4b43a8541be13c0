package app

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/charterlog/charter/log"
)

// State is the committed key-value state (the ledger's applied maps). The
// runtime only reads it; implementations must be safe for the concurrent
// use of many calls and must not retain the slices they are given.
type State interface {
	// GetKV returns the value of key in map m, or log.ErrNotFound.
	// Any other error aborts the call (it is not shown to JS as absence).
	// The caller may keep the returned slice; it must not be modified
	// afterwards by the implementation.
	GetKV(m string, key []byte) ([]byte, error)
	// ScanKV calls fn for every entry of map m in ascending key order; fn's
	// arguments are valid only during the call. An error from fn stops the
	// scan and is returned.
	ScanKV(m string, fn func(key, value []byte) error) error
}

// ReadRecorder is a State that keeps its own record of what a call read
// (the node's does, to put the reads in the ledger). When a call's first
// attempt is discarded and the call is made again (policy.Invocation.
// Discard), the Tx calls ForgetReads, so that only the attempt whose
// outcome counts is checked when the transaction applies.
type ReadRecorder interface {
	State
	ForgetReads()
}

// ErrConflict is returned by ReadSet.Check when the state has changed
// under a transaction's reads.
var ErrConflict = errors.New("app: read set conflicts with the current state")

// Access is what an app may do with a map.
type Access int

const (
	// AccessReadWrite: an app map in a readwrite endpoint.
	AccessReadWrite Access = iota
	// AccessReadOnly: the public maps governance writes
	// (log.WrittenByGovernance: public:ccf.gov.*, public:ccf.internal.*,
	// public:scitt.*), and every app map in a readonly or historical
	// endpoint.
	AccessReadOnly
	// AccessIllegal: the private forms of governed namespaces (ccf.gov.*,
	// scitt.*, ...), the maps the nodes maintain (log.WrittenByNodes:
	// public:charter.*), and names that are not valid map names (empty,
	// too long, containing a zero byte).
	AccessIllegal
)

func (a Access) String() string {
	switch a {
	case AccessReadWrite:
		return "read-write"
	case AccessReadOnly:
		return "read-only"
	default:
		return "inaccessible"
	}
}

// MapAccess returns what an app may do with map name in an endpoint that
// is (readonly) or is not allowed to write. It follows CCF's
// check_kv_map_access (src/js/permissions_checks.h) for app contexts, with
// Charter's governed maps (log.GovernedPrefixes) in place of CCF's two
// namespaces: no app writes a governed map, and the same list is enforced
// again when every node applies the transaction (internal/ledger).
func MapAccess(name string, readonly bool) Access {
	if name == "" || len(name) > log.MaxMapNameBytes || strings.IndexByte(name, 0) >= 0 {
		return AccessIllegal
	}
	switch g, public := log.Governed(name); {
	case g.Writer == log.WrittenByGovernance && public:
		return AccessReadOnly
	case g.Writer != log.NotGoverned:
		return AccessIllegal
	}
	if readonly {
		return AccessReadOnly
	}
	return AccessReadWrite
}

// KeyRead is one read a transaction made of the committed state: the value
// it observed, or Present false for absence.
type KeyRead struct {
	Map     string
	Key     []byte
	Value   []byte
	Present bool
}

// ScanRead records that a transaction observed a whole map (forEach, size,
// clear): Digest is log.MapDigester's over the map's entries in key order, each as
// 8-byte big-endian key length, key, 8-byte value length, value.
type ScanRead struct {
	Map    string
	Digest [32]byte
}

// ReadSet is everything a transaction observed of the committed state, in
// the order first observed. Reads of the transaction's own writes are not
// included: they do not depend on the state.
type ReadSet struct {
	Keys  []KeyRead
	Scans []ScanRead
}

// Check re-reads every key and map of the read set from s and returns
// ErrConflict (wrapped, naming the map) if any differs: the optimistic
// check a leader makes before it commits a transaction's writes, against
// the state the writes would apply to. Other errors are s's.
func (r *ReadSet) Check(s State) error {
	if r == nil {
		return nil
	}
	for _, k := range r.Keys {
		v, err := s.GetKV(k.Map, k.Key)
		switch {
		case errors.Is(err, log.ErrNotFound):
			if k.Present {
				return fmt.Errorf("%w: %s: a key was deleted", ErrConflict, k.Map)
			}
		case err != nil:
			return err
		case !k.Present || !bytes.Equal(v, k.Value):
			return fmt.Errorf("%w: %s: a key changed", ErrConflict, k.Map)
		}
	}
	for _, sc := range r.Scans {
		d, err := scanDigest(s, sc.Map)
		if err != nil {
			return err
		}
		if d != sc.Digest {
			return fmt.Errorf("%w: %s: the map changed", ErrConflict, sc.Map)
		}
	}
	return nil
}

// scanDigest is the digest of map m's entries: log.MapDigester's, the one
// the ledger checks scans with.
func scanDigest(s State, m string) ([32]byte, error) {
	var d log.MapDigester
	err := s.ScanKV(m, func(k, v []byte) error { d.Add(k, v); return nil })
	return d.Sum(), err
}

// Tx is one request's transaction: its writes overlaid on State (reads see
// the transaction's own writes), the ordered write set and the read set. A
// Tx is used by one call at a time; make a new one per request.
type Tx struct {
	state State
	maps  map[string]*txMap
	order []*txMap // in order of first write
	nkeys int
	reads ReadSet
	// fatal is a State failure seen during the call: the call's outcome
	// must be discarded whatever JS made of the exception.
	fatal error
}

type txMap struct {
	name    string
	writes  map[string]*txWrite
	order   []string // keys in order of first write
	cleared bool     // every committed key is deleted (and listed in writes)
	read    map[string]bool
	scanned bool
	written bool
}

type txWrite struct {
	value   []byte
	deleted bool
}

// NewTx starts a transaction over s.
func NewTx(s State) *Tx {
	return &Tx{state: s, maps: make(map[string]*txMap)}
}

// discard forgets every read and write, keeping only a State failure
// (which dooms the call whatever happens next).
func (t *Tx) discard() {
	*t = Tx{state: t.state, maps: make(map[string]*txMap), fatal: t.fatal}
	if r, ok := t.state.(ReadRecorder); ok {
		r.ForgetReads()
	}
}

// Err returns the State failure that aborted a call on this Tx, if any.
func (t *Tx) Err() error { return t.fatal }

// ReadSet returns what the transaction observed of the committed state.
func (t *Tx) ReadSet() *ReadSet {
	r := t.reads
	return &r
}

// WriteSet returns the transaction's writes, the last value of each key
// written, in order of first write (maps in order of first write), or nil
// if it wrote nothing.
func (t *Tx) WriteSet() *log.WriteSet {
	var ws []log.Write
	for _, m := range t.order {
		for _, k := range m.order {
			w := m.writes[k]
			x := log.Write{Map: m.name, Key: []byte(k), Delete: w.deleted}
			if !w.deleted {
				x.Value = w.value
			}
			ws = append(ws, x)
		}
	}
	if len(ws) == 0 {
		return nil
	}
	return &log.WriteSet{Writes: ws}
}

func (t *Tx) mapFor(name string) *txMap {
	m := t.maps[name]
	if m == nil {
		m = &txMap{name: name, writes: map[string]*txWrite{}, read: map[string]bool{}}
		t.maps[name] = m
	}
	return m
}

// get returns the value of key as the transaction sees it.
func (t *Tx) get(name string, key []byte) ([]byte, bool, error) {
	m := t.mapFor(name)
	if w, ok := m.writes[string(key)]; ok {
		return w.value, !w.deleted, nil
	}
	if m.cleared {
		return nil, false, nil
	}
	v, err := t.state.GetKV(name, key)
	present := true
	if errors.Is(err, log.ErrNotFound) {
		v, present, err = nil, false, nil
	}
	if err != nil {
		return nil, false, t.fail(fmt.Errorf("app: reading map %q: %w", name, err))
	}
	if !m.read[string(key)] && !m.scanned {
		m.read[string(key)] = true
		t.reads.Keys = append(t.reads.Keys, KeyRead{Map: name, Key: bytes.Clone(key), Value: v, Present: present})
	}
	return v, present, nil
}

func (t *Tx) fail(err error) error {
	if t.fatal == nil {
		t.fatal = err
	}
	return err
}

// errTooManyWrites is thrown to JS when a transaction would exceed the
// write-set bound every node enforces.
var errTooManyWrites = fmt.Errorf("transaction writes more than %d keys", log.MaxWrites)

func (t *Tx) put(name string, key, value []byte, deleted bool) error {
	if len(key) > log.MaxKeyBytes {
		return fmt.Errorf("key of %d bytes exceeds %d", len(key), log.MaxKeyBytes)
	}
	m := t.mapFor(name)
	w, ok := m.writes[string(key)]
	if !ok {
		if t.nkeys >= log.MaxWrites {
			return errTooManyWrites
		}
		t.nkeys++
		w = &txWrite{}
		m.writes[string(key)] = w
		m.order = append(m.order, string(key))
		if !m.written {
			m.written = true
			t.order = append(t.order, m)
		}
	}
	w.deleted = deleted
	w.value = nil
	if !deleted {
		w.value = bytes.Clone(value)
		if w.value == nil {
			w.value = []byte{}
		}
	}
	return nil
}

// entries returns the map as the transaction sees it, in key order, and
// records the scan in the read set.
func (t *Tx) entries(name string) ([]kvEntry, error) {
	m := t.mapFor(name)
	var out []kvEntry
	if !m.cleared {
		var d log.MapDigester
		err := t.state.ScanKV(name, func(k, v []byte) error {
			d.Add(k, v)
			if _, over := m.writes[string(k)]; !over {
				out = append(out, kvEntry{bytes.Clone(k), bytes.Clone(v)})
			}
			return nil
		})
		if err != nil {
			return nil, t.fail(fmt.Errorf("app: scanning map %q: %w", name, err))
		}
		if !m.scanned {
			m.scanned = true
			t.reads.Scans = append(t.reads.Scans, ScanRead{Map: name, Digest: d.Sum()})
		}
	}
	for _, k := range m.order {
		if w := m.writes[k]; !w.deleted {
			out = append(out, kvEntry{[]byte(k), w.value})
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].key, out[j].key) < 0 })
	return out, nil
}

// clear deletes every key the transaction sees in the map.
func (t *Tx) clear(name string) error {
	es, err := t.entries(name)
	if err != nil {
		return err
	}
	for _, e := range es {
		if err := t.put(name, e.key, nil, true); err != nil {
			return err
		}
	}
	t.mapFor(name).cleared = true
	return nil
}

type kvEntry struct{ key, value []byte }
