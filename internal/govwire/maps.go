package govwire

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

	// MapVirtualMeasurements are the measurements a node on the virtual
	// platform may report (internal/attest), as CCF's map of that name.
	MapVirtualMeasurements = "public:ccf.gov.nodes.virtual.measurements" // measurement hex (48 bytes) → {}
	// MapNodeJoinLimits bounds joins (set_node_join_limits).
	MapNodeJoinLimits = "public:ccf.gov.nodes.join_limits" // "limits" → {"max_pending_nodes": N}

	// MapAppBundle holds the JS application (set_js_app). CCF splits a
	// bundle over public:ccf.gov.modules (one key per module) and
	// public:ccf.gov.endpoints (one key per "METHOD url"); Charter keeps
	// the bundle whole under KeyAppBundle, as submitted (re-serialised by
	// the constitution), so the app runtime reads one value, in one
	// transaction, and validates it with the same parser that checked
	// it at proposal time: no half-written app can be observed.
	MapAppBundle = "public:ccf.gov.app.bundle" // "bundle" → {"metadata", "modules"}; "disable_bytecode_cache" → bool
	// MapJSRuntimeOptions bounds the app's interpreter (set_js_runtime_options).
	MapJSRuntimeOptions = "public:ccf.gov.js_runtime_options" // "options" → JSRuntimeOptions

	// JWT authentication of app requests, CCF's maps and shapes.
	MapJWTIssuers = "public:ccf.gov.jwt.issuers" // issuer → JWTIssuer
	// MapJWTKeys maps a JWK's kid to the keys registered under it, one
	// per issuer (CCF's public_signing_keys_metadata, the newest layout).
	MapJWTKeys = "public:ccf.gov.jwt.public_signing_keys_metadata" // kid → [JWTKey]
	// MapCACertBundles are named PEM bundles (set_ca_cert_bundle), which
	// JWT issuers with auto_refresh name to fetch their keys over TLS.
	MapCACertBundles = "public:ccf.gov.tls.ca_cert_bundles" // name → PEM certificates (not JSON)

	// SCITT's governed configuration.
	MapSCITTConfig = "public:scitt.configuration" // "configuration" → config.Registration as JSON
	MapSCITTPolicy = "public:scitt.policy"        // "policy" → registration policy JS (not JSON)
	MapIssuerKeys  = "public:scitt.issuer_keys"   // "iss|kid-hex" → JWK/PEM of a trusted issuer key
)

// Keys of single-entry maps.
const (
	KeyConstitution         = "constitution"
	KeyService              = "service"
	KeyAppBundle            = "bundle"
	KeyDisableBytecodeCache = "disable_bytecode_cache"
	KeyJSRuntimeOptions     = "options"
)

// JSRuntimeOptions bound the JS app's interpreter. The default
// constitution fills every field, with CCF's defaults for the optional
// ones. Charter's runtime is not QuickJS: how max_stack_bytes maps onto
// it is the app runtime's to document.
type JSRuntimeOptions struct {
	MaxHeapBytes           uint64 `json:"max_heap_bytes"`
	MaxStackBytes          uint64 `json:"max_stack_bytes"`
	MaxExecutionTimeMS     uint64 `json:"max_execution_time_ms"`
	LogExceptionDetails    bool   `json:"log_exception_details"`
	ReturnExceptionDetails bool   `json:"return_exception_details"`
	MaxCachedInterpreters  uint64 `json:"max_cached_interpreters"`
}

// JWTIssuer is a registered JWT issuer (CCF's JwtIssuerMetadata).
// AutoRefresh is recorded but not acted on yet: Charter does not fetch
// JWKS from issuers.
type JWTIssuer struct {
	AutoRefresh      bool   `json:"auto_refresh,omitempty"`
	CACertBundleName string `json:"ca_cert_bundle_name,omitempty"`
	KeyFilter        string `json:"key_filter,omitempty"`
}

// JWTKey is one signing key of an issuer under a kid. Exactly one of
// Cert and JWK is set: Cert is the base64 DER certificate of a JWK that
// carries x5c (as CCF stores it); JWK is the public key itself (kty RSA
// with n and e, or EC with crv, x and y) for one that does not.
type JWTKey struct {
	Cert   string          `json:"cert,omitempty"`
	JWK    json.RawMessage `json:"jwk,omitempty"`
	Issuer string          `json:"issuer"`
	// Constraint, if set, is what the token's iss claim must equal
	// (the JWK's own "issuer" member, as Entra publishes it).
	Constraint string `json:"constraint,omitempty"`
}

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

// ServiceInfo is the service's record (CCF's, less the fields Charter does
// not keep). The constitution's transition_service_to_open compares its
// arguments with Cert and PreviousServiceIdentity.
type ServiceInfo struct {
	Status string `json:"status"` // Opening | Open | Recovering | WaitingForRecoveryShares
	// Cert is the current service certificate (PEM).
	Cert string `json:"cert,omitempty"`
	// PreviousServiceIdentity is the certificate (PEM) of the service a
	// recovery continued, which Cert endorses; RecoveryCount counts the
	// recoveries (CCF's names).
	PreviousServiceIdentity string `json:"previous_service_identity,omitempty"`
	RecoveryCount           int    `json:"recovery_count,omitempty"`
	// PrivateStatePending: the recovered ledger holds private maps, which
	// read back only once members submit their recovery shares.
	PrivateStatePending bool `json:"private_state_pending,omitempty"`
}

// Service states.
const (
	ServiceOpening = "Opening"
	ServiceOpen    = "Open"
	// ServiceRecovering: a service recovered from a previous network's
	// ledger, until its members open it; governance works, registrations
	// and apps are refused.
	ServiceRecovering = "Recovering"
	// ServiceWaitingForShares: opened by the members, waiting for enough
	// recovery shares to read the private maps back (CCF's name).
	ServiceWaitingForShares = "WaitingForRecoveryShares"
)

// Recovering reports whether status is one in which a recovered service
// refuses registrations and apps.
func Recovering(status string) bool {
	return status == ServiceRecovering || status == ServiceWaitingForShares
}

// ErrNotFound reports an absent key.
var ErrNotFound = errors.New("gov: not found")
