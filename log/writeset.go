package log

import (
	"fmt"

	"github.com/charterlog/charter/cbor"
)

// Write is one change to a key-value map.
type Write struct {
	_   struct{} `cbor:",toarray"`
	Map string
	Key []byte
	// Value is the new value; ignored when Delete.
	Value  []byte
	Delete bool
}

// WriteSet is the body of a TxWrites transaction: the writes, in order,
// and the claims that justify them (for governance, the member's signed
// request), so an auditor sees who caused each change.
type WriteSet struct {
	_      struct{} `cbor:",toarray"`
	Writes []Write
	Claims []byte
}

// Limits on a write set, checked by the leader before proposing and by
// every node before applying.
const (
	MaxWrites       = 4096
	MaxMapNameBytes = 256
	MaxKeyBytes     = 4096
)

// Validate checks the write set's shape: bounded counts and sizes, map names
// that are non-empty, without a zero byte, and not a map the node itself
// maintains.
func (w *WriteSet) Validate() error {
	if len(w.Writes) == 0 || len(w.Writes) > MaxWrites {
		return fmt.Errorf("log: write set of %d writes, want 1 to %d", len(w.Writes), MaxWrites)
	}
	for i, x := range w.Writes {
		if x.Map == "" || len(x.Map) > MaxMapNameBytes {
			return fmt.Errorf("log: write %d: map name of %d bytes", i, len(x.Map))
		}
		for j := 0; j < len(x.Map); j++ {
			if x.Map[j] == 0 {
				return fmt.Errorf("log: write %d: map name contains a zero byte", i)
			}
		}
		if len(x.Key) > MaxKeyBytes {
			return fmt.Errorf("log: write %d: key of %d bytes", i, len(x.Key))
		}
	}
	return nil
}

// MarshalWriteSet encodes w canonically.
func MarshalWriteSet(w *WriteSet) ([]byte, error) { return cbor.Marshal(w) }

// UnmarshalWriteSet decodes a TxWrites body.
func UnmarshalWriteSet(b []byte) (*WriteSet, error) {
	var w WriteSet
	if err := decMode.Unmarshal(b, &w); err != nil {
		return nil, fmt.Errorf("log: write set: %w", err)
	}
	return &w, nil
}
