package gov

import (
	"encoding/json"
	"errors"
)

// The governance maps, all public (in clear in the ledger, so anyone can
// audit who proposed and voted what). Keys and values are UTF-8 strings;
// values are JSON unless noted. Names follow CCF's where CCF has one.
const (
	MapMemberCerts     = "public:ccf.gov.members.certs"                  // member id → certificate PEM (not JSON)
	MapMemberInfo      = "public:ccf.gov.members.info"                   // member id → MemberInfo
	MapMemberEncKeys   = "public:ccf.gov.members.encryption_public_keys" // member id → public key PEM (not JSON)
	MapMemberAcks      = "public:ccf.gov.members.acks"                   // member id → Ack
	MapProposals       = "public:ccf.gov.proposals"                      // proposal id → the proposal JSON as submitted
	MapProposalsInfo   = "public:ccf.gov.proposals_info"                 // proposal id → ProposalInfo
	MapConstitution    = "public:ccf.gov.constitution"                   // "constitution" → JS module source (not JSON)
	MapRecentRequests  = "public:ccf.gov.cose_recent_proposals"          // "created_at:digest" → proposal id or message type
	MapHistory         = "public:ccf.gov.history"                        // member id → the member's last signed request, base64
	MapServiceInfo     = "public:ccf.gov.service.info"                   // "service" → ServiceInfo
	MapUserCerts       = "public:ccf.gov.users.certs"                    // user id → certificate PEM
	MapUserInfo        = "public:ccf.gov.users.info"                     // user id → {"user_data": any}
	MapNodesInfo       = "public:ccf.gov.nodes.info"                     // node id → {"status": ...}
	MapSNPMeasurements = "public:ccf.gov.nodes.snp.measurements"         // measurement hex → {}
	MapSNPHostData     = "public:ccf.gov.nodes.snp.host_data"            // host data hex → {}
	MapRecovery        = "public:ccf.gov.recovery"                       // "threshold" → number

	// SCITT's governed configuration.
	MapSCITTConfig = "public:scitt.configuration" // "configuration" → config.Registration as JSON
	MapSCITTPolicy = "public:scitt.policy"        // "policy" → registration policy JS (not JSON)
	MapIssuerKeys  = "public:scitt.issuer_keys"   // "iss|kid-hex" → JWK/PEM of a trusted issuer key
)

// Keys of single-entry maps.
const (
	KeyConstitution = "constitution"
	KeyService      = "service"
)

// Member states (CCF's).
const (
	MemberAccepted = "Accepted"
	MemberActive   = "Active"
)

// MemberInfo is a member's record.
type MemberInfo struct {
	Status     string          `json:"status"`
	MemberData json.RawMessage `json:"member_data,omitempty"`
}

// AckRecord is the state digest a member was asked to sign, and whether it did.
type AckRecord struct {
	StateDigest string `json:"state_digest"`
}

// Proposal states (CCF's).
const (
	StateOpen      = "Open"
	StateAccepted  = "Accepted"
	StateWithdrawn = "Withdrawn"
	StateRejected  = "Rejected"
	StateFailed    = "Failed"
	StateDropped   = "Dropped"
)

// ProposalInfo is a proposal's record: who proposed it, its state, the
// ballots (JS sources by member id) and, once closed, how each ballot voted.
type ProposalInfo struct {
	ProposerID string            `json:"proposer_id"`
	State      string            `json:"state"`
	Ballots    map[string]string `json:"ballots"`
	FinalVotes map[string]bool   `json:"final_votes,omitempty"`
	// VoteFailures are ballots that threw or did not return a boolean.
	VoteFailures map[string]string `json:"vote_failures,omitempty"`
	Failure      *Failure          `json:"failure,omitempty"`
}

// Failure explains a Failed proposal (apply threw).
type Failure struct {
	Reason string `json:"reason"`
}

// ServiceInfo is the service's record.
type ServiceInfo struct {
	Status string `json:"status"` // Opening | Open
}

// Service states.
const (
	ServiceOpening = "Opening"
	ServiceOpen    = "Open"
)

// ErrNotFound reports an absent key.
var ErrNotFound = errors.New("gov: not found")
