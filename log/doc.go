// Package log defines Charter's ledger: the transaction records, the Merkle
// tree over them, and the signed checkpoints that make receipts issuable.
//
// Everything here is pure: hashes come in through tlog.HashReader and go out
// through a callback, so the same code serves the node (backed by Pebble), the
// offline auditor and the tests.
//
// # The ledger
//
// The ledger is a sequence of transactions numbered from 1 (the seqno). A
// transaction's id is "view.seqno", view being the raft term of the leader that
// proposed it. The Merkle tree (RFC 9162 §2.1, SHA-256) has one leaf per
// transaction: leaf i (0-based) is transaction seqno i+1, and
//
//	leaf hash = SHA-256(0x00 ‖ entry)
//
// where entry is a 32-byte digest:
//   - a registration's entry is the signed statement's LeafEntry: SHA-256 of
//     the statement with its unprotected header emptied (see package cose);
//   - any other transaction's entry is SHA-256 of the canonical CBOR array
//     [type, view, seqno, SHA-256(body)] (Record.ComputeEntry).
//
// # Checkpoints
//
// A checkpoint transaction carries a tree size N, the root of the first N
// leaves, one COSE signature by the service key over that root (the protected
// header and signature every receipt under that root reuses), and a C2SP
// signed-note checkpoint of the same tree. A checkpoint is only ever made over
// committed, applied state, and every node re-derives the root before applying
// it, so no two checkpoints can sign different roots for one size.
package log
