// Package peer is how a node's raft talks to the others': the /node/raft
// protocol over mutual-TLS HTTPS, both sides of it.
//
//   - Sending: HTTPTransport, replication's Transport, batches each peer's
//     messages on its own queue and streams snapshots, asking the follower
//     first which ledger prefix it holds (PathSnapshotBase) so that only
//     what lies beyond is sent.
//   - Receiving: ReceiveRaft and ReceiveSnapshot read a request (which
//     header carries what, how much of a body is read) and hand the bytes
//     to replication.Node, which decodes them, checks them against the
//     sender's role, and steps raft.
//   - History: a node that installed a state image (no history below its
//     floor) fetches the missing ranges from a trusted peer over
//     PathHistory (Backfiller, ServeHistory; history.go), and the store
//     verifies each against the Merkle tree before writing it.
//   - Who is talking: Directory maps a TLS key to the node the ledger
//     records for it, in its role (identify.go, spec/security.md "Peers"),
//     and gives each peer's client, which accepts only that peer's key.
//
// The routes are mounted by the HTTP edge (internal/httpapi), which first
// identifies the calling node (with Directory.Identify) and afterwards answers
// replication's errors (problems.go): who may call and what status a
// refusal gets are the edge's, as for every other route, and the one table
// of errors to HTTP answers stays in one place. What travels where is
// this package's, so the sender and the reader of a header are in one
// file apart.
//
// replication imports no net/http: the Ready loop sees only messages and
// byte streams, and its tests drive it without a network.
package peer
