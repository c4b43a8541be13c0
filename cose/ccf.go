package cose

import (
	"crypto/sha256"
	"fmt"
	"regexp"

	"github.com/charterlog/charter/cbor"
)

// CCF receipts (vds 2, CCF_LEDGER_SHA256), as issued by the CCF SCITT ledger
// (draft-birkholz-cose-receipts-ccf-profile). They share the COSE_Sign1
// envelope of RFC 9942 receipts; only the proof differs. Each element of
// vdp -1 is a bstr holding the CBOR map
//
//	{
//	  1: [write_set_digest: bstr32, commit_evidence: tstr, claims_digest: bstr32],  ; leaf
//	  2: [* [left: bool, hash: bstr32]],                                           ; path
//	}
//
// The leaf is SHA-256(write_set_digest ‖ SHA-256(commit_evidence) ‖
// claims_digest) and the path folds without RFC 9162's domain-separation
// prefixes: acc = SHA-256(hash ‖ acc) when left, else SHA-256(acc ‖ hash).
// The final acc is the root the receipt signs. For a SCITT registration the
// claims digest is the statement's leaf entry, SHA-256 of the statement with
// an empty unprotected header.

// CCF proof map labels.
const (
	ccfLabelLeaf = 1
	ccfLabelPath = 2
)

// CCFPathElement is one step of a CCF inclusion path.
type CCFPathElement struct {
	Left bool // the sibling is on the left
	Hash []byte
}

// CCFProof is a CCF inclusion proof.
type CCFProof struct {
	WriteSetDigest []byte
	CommitEvidence string // "ce:<view>.<seqno>:<hex>"
	ClaimsDigest   []byte
	Path           []CCFPathElement
}

// commitEvidence matches CCF's commit evidence, whose txid is the
// transaction that holds the entry.
var commitEvidence = regexp.MustCompile(`^ce:([0-9]+\.[0-9]+):([0-9a-f]{64})$`)

// maxCommitEvidence bounds the commit evidence text.
const maxCommitEvidence = 256

func parseCCFProof(b []byte) (CCFProof, error) {
	var p CCFProof
	if len(b) == 0 || b[0]>>5 != 5 {
		// scitt-cose-v1 fail-unsupported-vds: an RFC 9162 proof under vds 2.
		return p, badReceipt("CCF proof (vds 2) is not a CCF proof map")
	}
	var m map[int64]cbor.RawMessage
	if err := decMode.Unmarshal(b, &m); err != nil {
		return p, badReceipt("CCF proof: %v", err)
	}
	if len(m) != 2 || m[ccfLabelLeaf] == nil || m[ccfLabelPath] == nil {
		return p, badReceipt("CCF proof map must hold exactly labels 1 (leaf) and 2 (path)")
	}
	leaf, err := cbor.DecodeArray(m[ccfLabelLeaf])
	if err != nil || len(leaf) != 3 {
		return p, badReceipt("CCF leaf is not [write_set_digest, commit_evidence, claims_digest]")
	}
	if p.WriteSetDigest, err = cbor.DecodeBytes(leaf[0]); err != nil || len(p.WriteSetDigest) != hashSize {
		return p, badReceipt("CCF write set digest is not 32 bytes")
	}
	if p.CommitEvidence, err = cbor.DecodeText(leaf[1]); err != nil || len(p.CommitEvidence) > maxCommitEvidence {
		return p, badReceipt("CCF commit evidence is not a short text string")
	}
	if p.ClaimsDigest, err = cbor.DecodeBytes(leaf[2]); err != nil || len(p.ClaimsDigest) != hashSize {
		return p, badReceipt("CCF claims digest is not 32 bytes")
	}
	path, err := cbor.DecodeArray(m[ccfLabelPath])
	if err != nil {
		return p, badReceipt("CCF path: %v", err)
	}
	if len(path) > maxPathLen {
		return p, badReceipt("CCF path of %d elements, at most %d", len(path), maxPathLen)
	}
	p.Path = make([]CCFPathElement, len(path))
	for i, raw := range path {
		e, err := cbor.DecodeArray(raw)
		if err != nil || len(e) != 2 || len(e[0]) != 1 || (e[0][0] != 0xf4 && e[0][0] != 0xf5) {
			return p, badReceipt("CCF path[%d] is not [bool, bstr]", i)
		}
		h, err := cbor.DecodeBytes(e[1])
		if err != nil || len(h) != hashSize {
			return p, badReceipt("CCF path[%d] hash is not 32 bytes", i)
		}
		p.Path[i] = CCFPathElement{Left: e[0][0] == 0xf5, Hash: h}
	}
	return p, nil
}

// Leaf returns the CCF leaf hash:
// SHA-256(write_set_digest ‖ SHA-256(commit_evidence) ‖ claims_digest).
func (p CCFProof) Leaf() []byte {
	ce := sha256.Sum256([]byte(p.CommitEvidence))
	h := sha256.New()
	h.Write(p.WriteSetDigest)
	h.Write(ce[:])
	h.Write(p.ClaimsDigest)
	return h.Sum(nil)
}

// Root folds the path over the leaf and returns the root it leads to.
func (p CCFProof) Root() []byte {
	acc := p.Leaf()
	for _, e := range p.Path {
		h := sha256.New()
		if e.Left {
			h.Write(e.Hash)
			h.Write(acc)
		} else {
			h.Write(acc)
			h.Write(e.Hash)
		}
		acc = h.Sum(nil)
	}
	return acc
}

// TxID returns the transaction id ("view.seqno") named by the commit
// evidence — the transaction that registered the entry — or "" when the
// commit evidence is not in CCF's form.
func (p CCFProof) TxID() string {
	m := commitEvidence.FindStringSubmatch(p.CommitEvidence)
	if m == nil {
		return ""
	}
	return m[1]
}

// String describes the proof for people.
func (p CCFProof) String() string {
	return fmt.Sprintf("CCF proof (commit evidence %s, claims digest %x, %d path elements)", p.CommitEvidence, p.ClaimsDigest, len(p.Path))
}
