// Package gov implements Charter's governance: members, proposals, ballots
// and acks in CCF's shapes, so that a CCF member's tools work unchanged.
//
// The requests members send, the governed maps' names and their records
// are internal/govwire's (the wire format the CLI shares); this package
// authenticates those requests against the members' map and runs them
// through the constitution over the ledger. It speaks no HTTP: its routes
// and its answers to errors are internal/httpapi's.
package gov
