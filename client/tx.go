package client

import (
	"fmt"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/log"
)

// TxReport is what VerifyTransaction established about a transaction.
type TxReport struct {
	Record  *log.Record
	Receipt *cose.VerifiedReceipt
	// WriteSet is the decoded body of a write-set transaction (governance).
	WriteSet *log.WriteSet
	// App is the decoded body of an app transaction: its writes (private
	// maps encrypted) and the claims digest the app bound into the leaf.
	App *log.AppTx
}

// VerifyTransaction checks, offline, that a ledger transaction record is in
// the ledger: it recomputes the record's leaf entry from its body (for a
// registration, the statement's leaf entry; for any other transaction,
// SHA-256 of [type, view, seqno, SHA-256(body)]) rather than trusting the
// record's Entry field, and verifies the receipt proves that entry at leaf
// seqno−1 under a root signed by one of keys. The leaf index is a signed
// fact only if Receipt.SizeBound (Charter receipts since the signed tree
// size); for older receipts, a non-registration entry still binds its
// seqno through the entry itself, a registration's does not.
func VerifyTransaction(record, receipt []byte, keys cose.KeySet) (*TxReport, error) {
	rec, err := log.UnmarshalRecord(record)
	if err != nil {
		return nil, err
	}
	if rec.Seqno == 0 {
		return nil, fmt.Errorf("record has seqno 0")
	}
	var entry [32]byte
	switch rec.Type {
	case log.TxRegistration:
		st, err := cose.ParseStatement(rec.Body, cose.ParseOptions{MaxSize: 64 << 20})
		if err != nil {
			return nil, fmt.Errorf("the registered statement does not parse: %w", err)
		}
		entry = st.LeafEntry()
	default:
		entry = log.ComputeEntry(rec.Type, rec.View, rec.Seqno, rec.Body)
	}
	if entry != rec.Entry {
		return nil, fmt.Errorf("the record's entry %x is not the one its body gives (%x)", rec.Entry, entry)
	}
	vr, err := cose.VerifyInclusion(receipt, entry[:], keys)
	if err != nil {
		return nil, err
	}
	if vr.VDS == cose.VDSRFC9162 && vr.LeafIndex != rec.Seqno-1 {
		return nil, fmt.Errorf("the receipt proves leaf %d, but transaction %s is leaf %d", vr.LeafIndex, rec.TxID(), rec.Seqno-1)
	}
	rep := &TxReport{Record: rec, Receipt: vr}
	switch rec.Type {
	case log.TxWrites:
		if rep.WriteSet, err = log.UnmarshalWriteSet(rec.Body); err != nil {
			return nil, err
		}
	case log.TxApp:
		if rep.App, err = log.UnmarshalAppTx(rec.Body); err != nil {
			return nil, err
		}
	}
	return rep, nil
}
