// Package cosetest holds what tests of receipt verifiers need: the changes
// anyone holding a receipt can make to it without the service's key.
package cosetest

import (
	"errors"
	"fmt"

	"github.com/charterlog/charter/cbor"
	"github.com/charterlog/charter/cose"
)

// RewriteProof returns receipt (a tagged COSE_Sign1 COSE Receipt) with the
// two numbers of each of its proofs (inclusion: tree_size, leaf_index;
// consistency: tree_size_1, tree_size_2) passed through edit, and
// everything else (protected header, path, signature) kept: the unprotected
// header is not signed, so this is what an attacker can do. It does not go
// through cose.NewInclusionReceipt, which refuses sizes other than the
// signed one.
func RewriteProof(receipt []byte, edit func(a, b uint64) (uint64, uint64)) ([]byte, error) {
	var tag cbor.Tag
	if err := cose.Unmarshal(receipt, &tag); err != nil || tag.Number != 18 {
		return nil, fmt.Errorf("not a tagged COSE_Sign1: %v", err)
	}
	raw, err := cose.Marshal(tag.Content)
	if err != nil {
		return nil, err
	}
	var msg struct {
		_           struct{} `cbor:",toarray"`
		Protected   []byte
		Unprotected map[int64]map[int64][][]byte
		Payload     []byte
		Signature   []byte
	}
	if err := cose.Unmarshal(raw, &msg); err != nil {
		return nil, err
	}
	if len(msg.Unprotected[396]) == 0 {
		return nil, errors.New("the receipt holds no proofs (label 396)")
	}
	for kind, proofs := range msg.Unprotected[396] {
		for i := range proofs {
			var p struct {
				_    struct{} `cbor:",toarray"`
				A, B uint64
				Path [][]byte
			}
			if err := cose.Unmarshal(proofs[i], &p); err != nil {
				return nil, err
			}
			p.A, p.B = edit(p.A, p.B)
			if proofs[i], err = cose.Marshal(p); err != nil {
				return nil, err
			}
		}
		msg.Unprotected[396][kind] = proofs
	}
	b, err := cose.Marshal(msg)
	if err != nil {
		return nil, err
	}
	return append([]byte{0xd2}, b...), nil
}

// SetProof is the edit that replaces both numbers by a and b.
func SetProof(a, b uint64) func(uint64, uint64) (uint64, uint64) {
	return func(uint64, uint64) (uint64, uint64) { return a, b }
}
