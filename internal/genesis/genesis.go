// Package genesis owns the format of the transaction that creates a
// network (seqno 1): the service identity and the rules it started with,
// public so that any auditor of the ledger learns them.
package genesis

import (
	"fmt"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/internal/config"
)

// Genesis is the body of the transaction that creates a network (seqno 1).
// It is public, so any auditor of the ledger learns the service identity and
// the rules it started with.
type Genesis struct {
	// Issuer is the service's name in receipts and checkpoints.
	Issuer string `cbor:"1,keyasint"`
	// ServiceCert is the DER service certificate; its key signs receipts.
	ServiceCert []byte `cbor:"2,keyasint"`
	// NoteVerifierKey verifies the signed-note checkpoints.
	NoteVerifierKey string `cbor:"3,keyasint"`
	// Members are the DER certificates of the initial members.
	Members [][]byte `cbor:"4,keyasint"`
	// Registration is the registration configuration.
	Registration config.Registration `cbor:"5,keyasint"`
	// CreatedAt is the creation time, Unix seconds.
	CreatedAt int64 `cbor:"6,keyasint"`
	// Constitution is the network's constitution; empty: the default.
	Constitution string `cbor:"7,keyasint,omitempty"`
	// MembersActive makes the initial members active without an
	// acknowledgement: a dev network whose node generated its own member.
	MembersActive bool `cbor:"8,keyasint,omitempty"`
	// Development marks a development network: the virtual platform of its
	// first node is approved at creation (config.Config.Development).
	Development bool `cbor:"9,keyasint,omitempty"`
	// OpenByVote keeps a network with active members Opening until they
	// vote transition_service_to_open (config.Config.OpenByVote).
	OpenByVote bool `cbor:"10,keyasint,omitempty"`
}

// NetworkKind is what /node/network reports of a network's kind.
func (g *Genesis) NetworkKind() string {
	if g.Development {
		return "development"
	}
	return "production"
}

// genesisDec decodes the genesis transaction under the CBOR policy with the
// ledger's bounds: the genesis is committed to the ledger and must decode
// on every node and for every auditor, however many trusted CAs or members
// it was created with. Unknown keys are ignored so that a genesis written
// by a later version, with a field added, still reads.
var genesisDec = cbor.NewDecMode(cbor.LedgerOptions())

// Marshal encodes g with Core Deterministic Encoding: its bytes are the
// transaction's body, hashed into the ledger.
func (g *Genesis) Marshal() ([]byte, error) { return cbor.Marshal(g) }

// Unmarshal decodes a genesis transaction's body.
func Unmarshal(b []byte) (*Genesis, error) {
	var g Genesis
	if err := genesisDec.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	return &g, nil
}
