package join

import "errors"

// The kinds of refusal Leader.Join returns, each in an *Error. Other
// errors it returns are the ledger's or consensus's, unchanged.
var (
	// ErrInvalidRequest: the body is not a join request.
	ErrInvalidRequest = errors.New("join: invalid request")
	// ErrTooLarge: the body is over MaxRequest bytes.
	ErrTooLarge = errors.New("join: request too large")
	// ErrInvalidSignature: the request is not signed by the key it names.
	ErrInvalidSignature = errors.New("join: invalid signature")
	// ErrInvalidEvidence: the evidence does not parse.
	ErrInvalidEvidence = errors.New("join: invalid evidence")
	// ErrAttestation: the evidence does not verify against what the
	// network accepts; the detail says what governance could approve.
	ErrAttestation = errors.New("join: attestation failed")
	// ErrRetired: the key is a node's that was removed from the network.
	ErrRetired = errors.New("join: node retired")
	// ErrAddressTaken: the key is a node's that joined from another URL.
	ErrAddressTaken = errors.New("join: node has another address")
	// ErrNotLeader: only the leader admits nodes; retry there.
	ErrNotLeader = errors.New("join: not the leader")
	// ErrRateLimited: new nodes join at a bounded rate; retry soon.
	ErrRateLimited = errors.New("join: rate limited")
	// ErrTooManyPending: as many nodes as governance allows are waiting
	// to become trusted voters; retry once one is trusted or removed.
	ErrTooManyPending = errors.New("join: too many pending nodes")
	// ErrUnavailable: recording the node or adding it to raft failed;
	// retry.
	ErrUnavailable = errors.New("join: unavailable")
)

// Error is a refusal: its Kind (one of the errors above) says what kind,
// Detail tells the joining node's operator why and what to do.
type Error struct {
	Kind   error
	Detail string
}

func (e *Error) Error() string { return e.Detail }
func (e *Error) Unwrap() error { return e.Kind }

func refuse(kind error, detail string) *Error { return &Error{Kind: kind, Detail: detail} }
