package log

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/charterlog/charter/cbor"
)

// TxType says what a transaction does.
type TxType uint8

const (
	// TxGenesis creates the network: service identity and configuration.
	TxGenesis TxType = 1
	// TxRegistration registers one signed statement.
	TxRegistration TxType = 2
	// TxCheckpoint signs the tree up to a size.
	TxCheckpoint TxType = 3
	// TxWrites applies a write set to key-value maps (governance, nodes).
	TxWrites TxType = 4
	// TxApp is one request to a JS app: its writes, applied only if what
	// it read is unchanged (AppTx).
	TxApp TxType = 5
)

func (t TxType) String() string {
	switch t {
	case TxGenesis:
		return "genesis"
	case TxRegistration:
		return "registration"
	case TxCheckpoint:
		return "checkpoint"
	case TxWrites:
		return "writes"
	case TxApp:
		return "app"
	case TxRecovery:
		return "recovery"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Record is a transaction as stored in the ledger, keyed by its seqno.
type Record struct {
	_     struct{} `cbor:",toarray"`
	Type  TxType
	View  uint64
	Seqno uint64
	// Entry is the 32-byte leaf entry (see the package doc).
	Entry [32]byte
	// Body is the transaction's write set: the signed statement for a
	// registration, the CBOR Checkpoint or Genesis for the others.
	Body []byte
	// Policy is, for a registration, SHA-256 of the registration policy
	// (JS source) that accepted it; zero when no policy was in force. An
	// auditor finds that policy in the ledger's history and re-runs it.
	Policy [32]byte
}

// TxID is the record's transaction id.
func (r *Record) TxID() TxID { return TxID{View: r.View, Seqno: r.Seqno} }

// ComputeEntry returns the leaf entry of a non-registration transaction:
// SHA-256 of the canonical CBOR array [type, view, seqno, SHA-256(body)]
// (RFC 8949 §4.2.1 core deterministic encoding: shortest-form heads).
func ComputeEntry(t TxType, view, seqno uint64, body []byte) [32]byte {
	bodyDigest := sha256.Sum256(body)
	enc := make([]byte, 0, 1+9+9+9+2+32)
	enc = append(enc, 0x84) // array(4)
	enc = appendHead(enc, 0, uint64(t))
	enc = appendHead(enc, 0, view)
	enc = appendHead(enc, 0, seqno)
	enc = appendHead(enc, 2, uint64(len(bodyDigest)))
	enc = append(enc, bodyDigest[:]...)
	return sha256.Sum256(enc)
}

// appendHead appends a CBOR head of the given major type in shortest form.
func appendHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return append(b, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(b, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// MarshalRecord encodes r canonically.
func MarshalRecord(r *Record) ([]byte, error) { return cbor.Marshal(r) }

// UnmarshalRecord decodes a stored record.
func UnmarshalRecord(b []byte) (*Record, error) {
	var r Record
	if err := decMode.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("log: record: %w", err)
	}
	// The decoder takes null for any field's zero value, and for a whole
	// empty record: a record's head is the array of its six fields, and
	// its type, view and seqno are integers.
	if _, ok := PeekSeqno(b); !ok {
		return nil, errors.New("log: record: not an array of 6 items starting with its type, view and seqno")
	}
	return &r, nil
}

// PeekSeqno returns the seqno of an encoded record without decoding the
// rest: a record is the array [type, view, seqno, entry, body, policy], so
// its seqno is the third item's argument. A reader that only orders
// records (the ledger files) uses it; whoever reads a record decodes it.
func PeekSeqno(b []byte) (uint64, bool) {
	major, n, k, ok := cbor.ReadHead(b)
	if !ok || major != cbor.MajorArray || n != 6 {
		return 0, false
	}
	b = b[k:]
	for range 2 {
		if major, _, k, ok = cbor.ReadHead(b); !ok || major != cbor.MajorUint {
			return 0, false
		}
		b = b[k:]
	}
	major, seqno, _, ok := cbor.ReadHead(b)
	return seqno, ok && major == cbor.MajorUint
}

// TxID identifies a transaction: view.seqno.
type TxID struct{ View, Seqno uint64 }

func (t TxID) String() string {
	return strconv.FormatUint(t.View, 10) + "." + strconv.FormatUint(t.Seqno, 10)
}

// ErrBadTxID reports a transaction id that is not "view.seqno".
var ErrBadTxID = errors.New("transaction id must be VIEW.SEQNO with both positive decimal integers")

// ParseTxID parses "view.seqno", rejecting signs, leading zeros and empty parts.
func ParseTxID(s string) (TxID, error) {
	v, n, ok := strings.Cut(s, ".")
	if !ok {
		return TxID{}, ErrBadTxID
	}
	view, err1 := parseCanonicalUint(v)
	seq, err2 := parseCanonicalUint(n)
	if err1 != nil || err2 != nil || view == 0 || seq == 0 {
		return TxID{}, ErrBadTxID
	}
	return TxID{View: view, Seqno: seq}, nil
}

func parseCanonicalUint(s string) (uint64, error) {
	if s == "" || len(s) > 20 || (len(s) > 1 && s[0] == '0') {
		return 0, ErrBadTxID
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, ErrBadTxID
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

// Proposal is one transaction as the leader proposes it, before it has a
// position. Followers apply it without re-running any check.
type Proposal struct {
	_    struct{} `cbor:",toarray"`
	Type TxType
	// Entry is set for registrations (the statement's leaf entry, computed
	// by the leader in the request's goroutine); other types derive it on apply.
	Entry [32]byte
	Body  []byte
	// Policy: see Record.Policy.
	Policy [32]byte
}

// Batch is the payload of one raft entry: proposals applied in order.
type Batch struct {
	_         struct{} `cbor:",toarray"`
	Proposals []Proposal
}

// MarshalBatch encodes a batch for a raft entry.
func MarshalBatch(b *Batch) ([]byte, error) { return cbor.Marshal(b) }

// UnmarshalBatch decodes a raft entry's batch.
func UnmarshalBatch(data []byte) (*Batch, error) {
	var b Batch
	if err := decMode.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("log: batch: %w", err)
	}
	return &b, nil
}

// decMode is the CBOR policy with the ledger's bounds (cbor.LedgerOptions):
// a raft batch may hold as many proposals as the leader's MaxBatch and an
// app transaction log.MaxReads reads, more than the policy's bounds for
// messages from outside, and every record a node has stored must still
// decode.
var decMode = cbor.NewDecMode(cbor.LedgerOptions())

// MarshalRecords encodes records canonically as one CBOR array (ledger
// exports).
func MarshalRecords(recs []*Record) ([]byte, error) { return cbor.Marshal(recs) }
