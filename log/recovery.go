package log

import (
	"errors"
	"fmt"

	"github.com/charterlog/charter/cbor"
)

// TxRecovery is the first transaction of a recovered service: a new
// network continues a previous one's ledger (same tree, seqnos continue)
// under a new service identity, which endorses the previous one.
const TxRecovery TxType = 6

// MapRecoveries is the map the nodes maintain with every recovery of the
// service: key the recovery transaction's seqno (8 bytes, big-endian),
// value its Recovery body. Only applying a TxRecovery writes it.
const MapRecoveries = "public:charter.recoveries"

// Recovery is the body of a TxRecovery transaction.
type Recovery struct {
	// PreviousServiceCert is the service certificate (DER) that signed the
	// ledger up to this transaction: the genesis's, or the previous
	// recovery's ServiceCert.
	PreviousServiceCert []byte `cbor:"1,keyasint"`
	// ServiceCert and NoteVerifierKey are the new service identity's.
	ServiceCert     []byte `cbor:"2,keyasint"`
	NoteVerifierKey string `cbor:"3,keyasint"`
	// Endorsement is the new service key's COSE_Sign1 over
	// PreviousServiceCert (cose.SignEndorsement).
	Endorsement []byte `cbor:"4,keyasint"`
	// PreviousSize is the number of transactions the recovered ledger
	// held: this transaction's seqno is PreviousSize+1.
	PreviousSize uint64 `cbor:"5,keyasint"`
	// RecoveredAt is when the recovery began (Unix seconds).
	RecoveredAt int64 `cbor:"6,keyasint"`
	// Writes are applied with the transaction: the service status
	// (Recovering) and the new node's records.
	Writes []Write `cbor:"7,keyasint,omitempty"`
}

// MarshalRecovery encodes r canonically.
func MarshalRecovery(r *Recovery) ([]byte, error) { return cbor.Marshal(r) }

// UnmarshalRecovery decodes a TxRecovery body and checks that it names both
// identities and an endorsement.
func UnmarshalRecovery(b []byte) (*Recovery, error) {
	var r Recovery
	if err := decMode.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("log: recovery: %w", err)
	}
	if len(r.PreviousServiceCert) == 0 || len(r.ServiceCert) == 0 || len(r.Endorsement) == 0 || r.NoteVerifierKey == "" {
		return nil, errors.New("log: recovery: a previous and a new service certificate, a note key and an endorsement are required")
	}
	if r.PreviousSize == 0 {
		return nil, errors.New("log: recovery: it recovers an empty ledger")
	}
	return &r, nil
}
