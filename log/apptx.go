package log

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"

	"github.com/charterlog/charter/cbor"
)

// AppTx is the body of a TxApp transaction: one request to a JS app,
// executed once on the leader against the committed state. Every node
// applies Writes only if each of Reads still holds against the state the
// transaction applies to (optimistic concurrency: a request that read
// something another transaction changed first is refused, identically on
// every node, and the leader runs it again). Reads and writes name maps as
// stored: a private map's name, keys and values are already encrypted under
// the ledger secret, so applying needs no secret.
type AppTx struct {
	_      struct{} `cbor:",toarray"`
	Writes []Write
	Reads  []Read
	// ClaimsDigest is the 32 bytes the app gave ccf.rpc.setClaimsDigest, or
	// empty. It is part of the leaf entry (through the body), so a receipt
	// for the transaction proves it.
	ClaimsDigest []byte
	// Nonce makes every request a distinct transaction: two identical
	// requests (the same deposit twice) are two transactions, never one.
	Nonce []byte
}

// Read is one observation a transaction depends on: the value of one key
// (Scan false) or the whole content of a map (Scan true, Key empty), by
// digest (ValueDigest, MapDigest).
type Read struct {
	_      struct{} `cbor:",toarray"`
	Map    string
	Key    []byte
	Scan   bool
	Digest [32]byte
}

// MaxReads bounds the reads of one app transaction.
const MaxReads = 16384

// ValueDigest is the digest a Read records for one key: SHA-256 of 0x01 and
// the value when present, all zeros when absent.
func ValueDigest(v []byte, present bool) [32]byte {
	if !present {
		return [32]byte{}
	}
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(v)
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// MapDigester computes the digest a scan Read records: SHA-256 over each
// entry in ascending key order, as 8-byte big-endian length and bytes of
// the key, then of the value.
type MapDigester struct{ h hash.Hash }

// Add appends one entry; entries must come in ascending key order.
func (d *MapDigester) Add(key, value []byte) {
	if d.h == nil {
		d.h = sha256.New()
	}
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(key)))
	d.h.Write(l[:])
	d.h.Write(key)
	binary.BigEndian.PutUint64(l[:], uint64(len(value)))
	d.h.Write(l[:])
	d.h.Write(value)
}

// Sum returns the digest of the entries added.
func (d *MapDigester) Sum() [32]byte {
	if d.h == nil {
		d.h = sha256.New()
	}
	var s [32]byte
	d.h.Sum(s[:0])
	return s
}

// Validate checks the shape of an app transaction: its writes as a write
// set's (at least one: a request that writes nothing is not a
// transaction), bounded reads, a claims digest of 0 or 32 bytes.
func (t *AppTx) Validate() error {
	ws := WriteSet{Writes: t.Writes}
	if err := ws.Validate(); err != nil {
		return err
	}
	if len(t.Reads) > MaxReads {
		return fmt.Errorf("log: app transaction of %d reads, at most %d", len(t.Reads), MaxReads)
	}
	for i, r := range t.Reads {
		if r.Map == "" || len(r.Map) > MaxMapNameBytes || len(r.Key) > MaxKeyBytes || (r.Scan && len(r.Key) > 0) {
			return fmt.Errorf("log: app transaction read %d is malformed", i)
		}
	}
	if len(t.Nonce) > 32 {
		return fmt.Errorf("log: nonce of %d bytes, at most 32", len(t.Nonce))
	}
	if n := len(t.ClaimsDigest); n != 0 && n != 32 {
		return fmt.Errorf("log: claims digest of %d bytes, want 32", n)
	}
	return nil
}

// MarshalAppTx encodes t canonically.
func MarshalAppTx(t *AppTx) ([]byte, error) { return cbor.Marshal(t) }

// UnmarshalAppTx decodes a TxApp body.
func UnmarshalAppTx(b []byte) (*AppTx, error) {
	var t AppTx
	if err := decMode.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("log: app transaction: %w", err)
	}
	return &t, nil
}
