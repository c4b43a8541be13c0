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
	enc = cbor.AppendHead(enc, cbor.MajorUint, uint64(t))
	enc = cbor.AppendHead(enc, cbor.MajorUint, view)
	enc = cbor.AppendHead(enc, cbor.MajorUint, seqno)
	enc = cbor.AppendBytes(enc, bodyDigest[:])
	return sha256.Sum256(enc)
}

// MarshalRecord encodes r canonically: the array [type, view, seqno,
// entry, body, policy] in Core Deterministic Encoding (RFC 8949 §4.2.1),
// written straight into one buffer of its size. Every node encodes its own
// records and they must be the same bytes everywhere: these are exactly
// the bytes the reflective encoder (cbor.Marshal) gives, which
// TestHandEncodingsMatchTheEncoder checks, at a fraction of its cost on
// the apply path.
func MarshalRecord(r *Record) ([]byte, error) {
	b := make([]byte, 0, 1+3*9+2*(2+32)+9+len(r.Body))
	b = append(b, 0x86) // array(6)
	b = cbor.AppendHead(b, cbor.MajorUint, uint64(r.Type))
	b = cbor.AppendHead(b, cbor.MajorUint, r.View)
	b = cbor.AppendHead(b, cbor.MajorUint, r.Seqno)
	b = cbor.AppendBytes(b, r.Entry[:])
	b = appendBody(b, r.Body)
	return cbor.AppendBytes(b, r.Policy[:]), nil
}

// cborNull is CBOR's null, which the encoder writes for a nil slice.
const cborNull = 0xf6

// appendBody appends a body as the encoder writes a []byte: null when nil.
func appendBody(b, body []byte) []byte {
	if body == nil {
		return append(b, cborNull)
	}
	return cbor.AppendBytes(b, body)
}

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
	// BodyAt is where Body starts in the batch UnmarshalBatch read it
	// from (Body aliases those bytes), so that a reader that keeps the
	// batch can find the body again (the store's record stubs). Not
	// encoded; 0 for a proposal that was not decoded.
	BodyAt int `cbor:"-"`
}

// Batch is the payload of one raft entry: proposals applied in order.
type Batch struct {
	_         struct{} `cbor:",toarray"`
	Proposals []Proposal
}

// MarshalBatch encodes a batch for a raft entry: [[proposal...]], each
// proposal [type, entry, body, policy], written straight into one buffer
// as MarshalRecord writes a record (the same bytes as cbor.Marshal).
func MarshalBatch(b *Batch) ([]byte, error) {
	size := 1 + 9
	for i := range b.Proposals {
		size += 1 + 9 + 2*(2+32) + 9 + len(b.Proposals[i].Body)
	}
	out := make([]byte, 0, size)
	out = append(out, 0x81) // array(1)
	if b.Proposals == nil {
		return append(out, cborNull), nil
	}
	out = cbor.AppendHead(out, cbor.MajorArray, uint64(len(b.Proposals)))
	for i := range b.Proposals {
		p := &b.Proposals[i]
		out = append(out, 0x84) // array(4)
		out = cbor.AppendHead(out, cbor.MajorUint, uint64(p.Type))
		out = cbor.AppendBytes(out, p.Entry[:])
		out = appendBody(out, p.Body)
		out = cbor.AppendBytes(out, p.Policy[:])
	}
	return out, nil
}

// UnmarshalBatch decodes a raft entry's batch. The proposals' bodies are
// sub-slices of data, not copies (a statement is not copied again on every
// node that applies it), so data must not change while they are in use;
// raft's entries never do.
func UnmarshalBatch(data []byte) (*Batch, error) {
	b, err := decodeBatch(data)
	if err != nil {
		return nil, fmt.Errorf("log: batch: %w", err)
	}
	return b, nil
}

func decodeBatch(data []byte) (*Batch, error) {
	// The policy's checks and bounds over the whole entry first (one
	// well-formed item, sizes, nesting); the fields are then only read.
	if err := decMode.Wellformed(data); err != nil {
		return nil, err
	}
	rest, ok := expectHead(data, cbor.MajorArray, 1)
	if !ok {
		return nil, errors.New("not an array of one item")
	}
	var b Batch
	if len(rest) == 1 && rest[0] == cborNull {
		return &b, nil
	}
	major, n, k, ok := cbor.ReadHead(rest)
	if !ok || major != cbor.MajorArray {
		return nil, errors.New("proposals are not an array")
	}
	rest = rest[k:]
	b.Proposals = make([]Proposal, n)
	for i := range b.Proposals {
		p := &b.Proposals[i]
		if rest, ok = expectHead(rest, cbor.MajorArray, 4); !ok {
			return nil, fmt.Errorf("proposal %d is not an array of four", i)
		}
		major, t, k, ok := cbor.ReadHead(rest)
		if !ok || major != cbor.MajorUint || t > 0xff {
			return nil, fmt.Errorf("proposal %d: type is not a small unsigned integer", i)
		}
		p.Type, rest = TxType(t), rest[k:]
		if rest, ok = readHash(rest, &p.Entry); !ok {
			return nil, fmt.Errorf("proposal %d: entry is not 32 bytes", i)
		}
		if len(rest) > 0 && rest[0] == cborNull {
			rest = rest[1:]
		} else {
			item, after, err := cbor.Split(rest)
			if err != nil {
				return nil, err
			}
			if p.Body, err = cbor.BytesContent(item); err != nil {
				return nil, fmt.Errorf("proposal %d: body: %v", i, err)
			}
			p.BodyAt = len(data) - len(rest) + len(item) - len(p.Body)
			rest = after
		}
		if rest, ok = readHash(rest, &p.Policy); !ok {
			return nil, fmt.Errorf("proposal %d: policy is not 32 bytes", i)
		}
	}
	return &b, nil
}

// expectHead consumes the head of an item of major type major with
// argument n from b.
func expectHead(b []byte, major byte, n uint64) ([]byte, bool) {
	m, arg, k, ok := cbor.ReadHead(b)
	if !ok || m != major || arg != n {
		return nil, false
	}
	return b[k:], true
}

// readHash consumes a 32-byte byte string from b into h.
func readHash(b []byte, h *[32]byte) ([]byte, bool) {
	rest, ok := expectHead(b, cbor.MajorBytes, 32)
	if !ok || len(rest) < 32 {
		return nil, false
	}
	copy(h[:], rest)
	return rest[32:], true
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
