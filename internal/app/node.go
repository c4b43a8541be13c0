package app

import (
	"fmt"
	"time"
)

// Transaction statuses, as CCF's ccf.consensus.getStatusForTxId returns them.
const (
	StatusUnknown   = "Unknown"
	StatusPending   = "Pending"
	StatusCommitted = "Committed"
	StatusInvalid   = "Invalid"
)

// Consensus is the node's view of consensus, behind ccf.consensus. It must
// be safe for concurrent use; answers may be stale by the time JS sees them
// (they are the local node's observation, as in CCF).
type Consensus interface {
	// LastCommitted returns the last transaction id known committed.
	LastCommitted() (view, seqno uint64)
	// Status returns StatusUnknown, StatusPending, StatusCommitted or
	// StatusInvalid for the transaction id view.seqno.
	Status(view, seqno uint64) string
	// ViewOf returns the view in which seqno was (or will be, if pending)
	// committed, and false if the node does not know it.
	ViewOf(seqno uint64) (uint64, bool)
}

// Historical gives access to the state of past transactions, behind
// ccf.historical. Fetching it may take time (ledger files are read and
// verified in the background), so StateRange never blocks for long: it
// returns ready=false and the app answers "try again later" (CCF's 202 +
// retry-after). It must be safe for concurrent use.
type Historical interface {
	// StateRange returns the states of transactions from..to (inclusive
	// seqnos, from ≤ to), one per seqno in order, if ready, and keeps them
	// cached under handle (an app-chosen number) for at least expiry.
	// ready=false means "not yet": the request for them is recorded and a
	// later call may succeed. An error means the range cannot be served
	// (e.g. beyond the end of the ledger); JS sees an exception.
	StateRange(handle, from, to uint64, expiry time.Duration) (states []HistoricalState, ready bool, err error)
	// DropCachedStates releases what handle holds and reports whether it
	// held anything.
	DropCachedStates(handle uint64) (bool, error)
}

// HistoricalState is the state of the ledger just after one transaction.
type HistoricalState struct {
	// TxID is "view.seqno".
	TxID string
	// Receipt proves the transaction's inclusion, in CCF's JSON shape.
	Receipt Receipt
	// KV is the key-value state as of the transaction; JS sees it read-only.
	KV State
}

// Receipt is CCF's receipt object (global.d.ts Receipt): JS sees
// {signature, cert, node_id, proof: [{left}|{right}], leaf_components:
// {write_set_digest, commit_evidence, claims_digest}} with the empty fields
// omitted.
type Receipt struct {
	Signature      string // base64 ECDSA signature over the Merkle root
	Cert           string // PEM certificate of the signing node
	NodeID         string // hex
	Proof          []ProofStep
	LeafComponents LeafComponents
}

// ProofStep is one Merkle path element: exactly one of Left and Right (hex
// SHA-256) is set.
type ProofStep struct {
	Left, Right string
}

// LeafComponents are the parts of the leaf the receipt proves (hex digests,
// commit evidence as text).
type LeafComponents struct {
	WriteSetDigest string
	CommitEvidence string
	ClaimsDigest   string
}

// FormatTxID writes CCF's transaction id "view.seqno".
func FormatTxID(view, seqno uint64) string { return fmt.Sprintf("%d.%d", view, seqno) }
