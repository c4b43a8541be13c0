// Package gov implements Charter's governance: members, proposals, ballots
// and acks in CCF's shapes, so that a CCF member's tools work unchanged.
//
// The requests members send, the governed maps' names and their records
// are internal/govwire's (the wire format the CLI shares); this package
// authenticates those requests against the members' map and runs them
// through the constitution over the ledger. It speaks no HTTP: its routes
// and its answers to errors are internal/httpapi's.
//
// On CCF's classic routes a member may instead sign with an HTTP signature
// as CCF ≤ 3's scurl.sh does (httpsig.go: (*Service).ParseHTTPSigned, each
// signing string accepted once), and ask for its state digest with its TLS
// client certificate alone (certauth.go). Both yield the same operations.
package gov
