// Package join is the join protocol: how a node proves its code by
// attestation before it holds any of the service's secrets, how the
// leader admits it, and how the secrets are released to it once it is
// trusted (spec/operations.md, "Joining a node").
//
//  1. The joining node makes its node key and evidence binding it
//     (report_data = SHA-256 of the key), and sends POST /node/join
//     {url, node_key, evidence, signature} over TLS, pinning the service
//     certificate. The signature, by the node key, proves it holds the key
//     the evidence binds.
//  2. The leader verifies the evidence against what governance approved
//     (public:ccf.gov.nodes.{snp,virtual}.measurements, snp.host_data) and
//     its operator's verification settings. A refusal is 403 with the
//     reason, and nothing is written.
//  3. A first join records the node in public:ccf.gov.nodes.info (Pending,
//     or Trusted while the service is still opening; with its key and its
//     evidence, so auditors can re-verify it) in one ledger transaction,
//     then adds it to raft as a learner: it follows the ledger. The answer
//     carries its id, its status and a TLS certificate issued by the
//     service key for its key.
//  4. Once the node is Trusted (transition_node_to_trusted), the answer also
//     carries the service key, the note key and the ledger secret sealed to
//     its node key (HPKE, attest.SealSecrets), and the leader records the
//     release. Only then may the node vote, and so lead and sign
//     checkpoints.
//
// The joining node repeats the request, with the same key, until it holds
// the secrets; every repetition is verified again.
//
// The package speaks no HTTP: the leader's side (Leader.Join) takes the
// request body and returns the answer or an *Error whose Kind the edge
// maps to a status; the joining node's client, which keeps the answers in
// its data directory, is internal/joinclient. GenesisWrites are the first
// node's own record and approved measurement. The node records and
// ApprovedPolicy are also what `charter node verify-quotes` re-verifies an
// audited ledger with, so the package reaches no ledger: the CLI links it.
package join
