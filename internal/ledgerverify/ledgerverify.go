// Package ledgerverify checks a ledger's history offline, from its
// transaction records alone, as an auditor or a restore does before
// trusting ledger files: that every record is the one its position says
// (seqnos in order, each leaf entry the hash its body gives), that the
// Merkle tree they build is the one every checkpoint signed (root and
// signature under the service key the genesis transaction names, and the
// signed note under its note key), and what the history holds. A
// recovered service changes keys at its recovery transaction (log.TxRecovery):
// the new service key must endorse the certificate that signed until then,
// and only the new keys sign the checkpoints after it.
//
// It keeps O(log n) of the tree (a compact range at the last checkpoint)
// plus the leaves since, so a ledger of any length verifies in bounded
// memory. Pure: records in, a report or the first error out.
package ledgerverify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/genesis"
	"github.com/charterlog/charter/log"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Errors, each a distinct finding.
var (
	ErrRecord     = errors.New("ledgerverify: a record is not what its position says")
	ErrCheckpoint = errors.New("ledgerverify: a checkpoint does not hold")
	ErrGenesis    = errors.New("ledgerverify: the genesis transaction")
	ErrRecovery   = errors.New("ledgerverify: a recovery transaction")
)

// A Report is what a verified ledger holds.
type Report struct {
	Transactions  uint64
	Registrations uint64
	Checkpoints   uint64
	// Writes counts key-value transactions: governance's and apps'.
	Writes uint64
	// Issuer is the service's name, from the genesis transaction.
	Issuer string
	// ServiceKeyID is the current service key's COSE kid (hex): the
	// genesis's, or the newest recovery's.
	ServiceKeyID string
	// ServiceCert is the current service certificate (DER).
	ServiceCert []byte
	// Recoveries counts recovery transactions, each of whose endorsement
	// of the previous identity verified.
	Recoveries uint64
	// CheckpointSize and CheckpointRoot are the newest checkpoint's.
	CheckpointSize uint64
	CheckpointRoot [32]byte
	// CheckpointSeqno is the newest checkpoint transaction's own seqno:
	// the end of the signed ledger.
	CheckpointSeqno uint64
	// Root is the tree's root over every transaction.
	Root [32]byte
}

// A Verifier checks records given in order from seqno 1.
type Verifier struct {
	rf     *compact.RangeFactory // ranges merge only with their own factory's
	atCP   *compact.Range        // the tree at the last checkpoint's size
	since  [][]byte              // leaf hashes after it
	keys   cose.KeySet
	notes  note.Verifier
	pinned []byte // a service certificate the chain must name (DER), if set
	// pinnedSeen: the genesis or a recovery named pinned.
	pinnedSeen bool
	report     Report
}

// New returns a Verifier. If serviceCertDER is set, the genesis transaction
// or a recovery must name that service certificate (Finish refuses the
// ledger otherwise); else the ledger's own genesis is trusted for the keys
// (the checks then prove the history consistent with itself, and an auditor
// compares the key with one obtained elsewhere).
func New(serviceCertDER []byte) *Verifier {
	rf := &compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	return &Verifier{rf: rf, atCP: rf.NewEmptyRange(0), pinned: serviceCertDER}
}

// RecordEntry recomputes a record's leaf entry from its body, as the
// ledger made it: the statement's (a COSE_Sign1) for a registration,
// log.ComputeEntry for every other transaction. A record whose entry is
// not this was altered. The error is a registration's statement that does
// not parse.
func RecordEntry(rec *log.Record) ([32]byte, error) {
	if rec.Type != log.TxRegistration {
		return log.ComputeEntry(rec.Type, rec.View, rec.Seqno, rec.Body), nil
	}
	s, err := cose.ParseSign1(rec.Body, cose.ParseOptions{})
	if err != nil {
		return [32]byte{}, err
	}
	return s.LeafEntry(), nil
}

// size is how many transactions have been added.
func (v *Verifier) size() uint64 { return v.report.Transactions }

// Add checks the next record (seqno Transactions+1).
func (v *Verifier) Add(seqno uint64, raw []byte) error {
	want := v.size() + 1
	rec, err := log.UnmarshalRecord(raw)
	if err != nil {
		return fmt.Errorf("%w: transaction %d does not decode: %v", ErrRecord, want, err)
	}
	if seqno != want || rec.Seqno != want {
		return fmt.Errorf("%w: transaction %d is where %d belongs", ErrRecord, rec.Seqno, want)
	}
	entry, err := RecordEntry(rec)
	if err != nil {
		return fmt.Errorf("%w: transaction %d: its statement does not parse: %v", ErrRecord, seqno, err)
	}
	if rec.Type == log.TxRegistration {
		v.report.Registrations++
	}
	if entry != rec.Entry {
		return fmt.Errorf("%w: transaction %d: its leaf entry is not the hash of its body (the record was altered)", ErrRecord, seqno)
	}
	switch rec.Type {
	case log.TxGenesis:
		if seqno != 1 {
			return fmt.Errorf("%w: a second genesis at %d", ErrGenesis, seqno)
		}
		if err := v.genesis(rec.Body); err != nil {
			return err
		}
	case log.TxCheckpoint:
		if err := v.checkpoint(seqno, rec.Body); err != nil {
			return err
		}
		v.report.Checkpoints++
	case log.TxWrites, log.TxApp:
		v.report.Writes++
	case log.TxRecovery:
		if err := v.recovery(seqno, rec.Body); err != nil {
			return err
		}
		v.report.Recoveries++
		v.report.Writes++
	}
	if seqno == 1 && rec.Type != log.TxGenesis {
		return fmt.Errorf("%w: transaction 1 is a %v, not the genesis", ErrGenesis, rec.Type)
	}
	leaf := tlog.RecordHash(entry[:])
	v.since = append(v.since, leaf[:])
	v.report.Transactions++
	return nil
}

func (v *Verifier) genesis(body []byte) error {
	g, err := genesis.Unmarshal(body)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrGenesis, err)
	}
	k, nv, err := v.identity(g.ServiceCert, g.NoteVerifierKey)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrGenesis, err)
	}
	v.keys, v.notes = cose.KeySet{k}, nv
	v.report.Issuer = g.Issuer
	return nil
}

// identity parses a service identity and makes it the current one.
func (v *Verifier) identity(certDER []byte, noteKey string) (cose.Key, note.Verifier, error) {
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return cose.Key{}, nil, fmt.Errorf("service certificate: %v", err)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return cose.Key{}, nil, errors.New("the service key is not ECDSA")
	}
	k, err := cose.NewKey(pub)
	if err != nil {
		return cose.Key{}, nil, fmt.Errorf("service key: %v", err)
	}
	nv, err := note.NewVerifier(noteKey)
	if err != nil {
		return cose.Key{}, nil, fmt.Errorf("note verifier key: %v", err)
	}
	if v.pinned != nil && bytes.Equal(certDER, v.pinned) {
		v.pinnedSeen = true
	}
	v.report.ServiceCert = certDER
	v.report.ServiceKeyID = printable(k.Kid)
	return k, nv, nil
}

// recovery checks a recovery transaction: it follows the ledger it
// recovers, names the certificate that signed until now as the previous
// one, and the new service key endorses that certificate. The new identity
// then signs every later checkpoint; the previous one signs no more.
func (v *Verifier) recovery(seqno uint64, body []byte) error {
	r, err := log.UnmarshalRecovery(body)
	if err != nil {
		return fmt.Errorf("%w: transaction %d: %v", ErrRecovery, seqno, err)
	}
	if r.PreviousSize != seqno-1 {
		return fmt.Errorf("%w: transaction %d recovers a ledger of %d transactions", ErrRecovery, seqno, r.PreviousSize)
	}
	if !bytes.Equal(r.PreviousServiceCert, v.report.ServiceCert) {
		return fmt.Errorf("%w: transaction %d names a previous service certificate that did not sign this ledger", ErrRecovery, seqno)
	}
	k, nv, err := v.identity(r.ServiceCert, r.NoteVerifierKey)
	if err != nil {
		return fmt.Errorf("%w: transaction %d: %v", ErrRecovery, seqno, err)
	}
	if err := cose.VerifyEndorsement(r.Endorsement, k, r.PreviousServiceCert); err != nil {
		return fmt.Errorf("%w: transaction %d: the new service key's endorsement of the previous identity: %v", ErrRecovery, seqno, err)
	}
	v.keys, v.notes = cose.KeySet{k}, nv
	return nil
}

// checkpoint checks a checkpoint transaction at seqno: the tree size it
// signs is beyond the previous checkpoint's and within the ledger before
// it, its root is this tree's at that size, and both signatures verify.
func (v *Verifier) checkpoint(seqno uint64, body []byte) error {
	cp, err := log.UnmarshalCheckpoint(body)
	if err != nil {
		return fmt.Errorf("%w: transaction %d does not decode: %v", ErrCheckpoint, seqno, err)
	}
	last := v.atCP.End()
	if cp.TreeSize <= last || cp.TreeSize > v.size() {
		return fmt.Errorf("%w: transaction %d signs tree size %d, not between the previous checkpoint's %d and the ledger's %d", ErrCheckpoint, seqno, cp.TreeSize, last, v.size())
	}
	r := v.rf.NewEmptyRange(0)
	if err := r.AppendRange(v.atCP, nil); err != nil {
		return err
	}
	n := cp.TreeSize - last
	for _, h := range v.since[:n] {
		if err := r.Append(h, nil); err != nil {
			return err
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return err
	}
	if !bytes.Equal(root, cp.Root[:]) {
		return fmt.Errorf("%w: transaction %d signs root %x for tree size %d; the records give %x", ErrCheckpoint, seqno, cp.Root[:8], cp.TreeSize, root[:8])
	}
	if v.keys == nil {
		return fmt.Errorf("%w: transaction %d: no genesis named the service key", ErrCheckpoint, seqno)
	}
	receipt, err := cose.NewConsistencyReceipt(cp.Protected, cp.Signature, cp.TreeSize, cp.TreeSize, nil)
	if err == nil {
		_, err = cose.VerifyConsistency(receipt, cp.TreeSize, cp.Root[:], v.keys)
	}
	if err != nil {
		return fmt.Errorf("%w: transaction %d: the signature over tree size %d is not the service key's: %v", ErrCheckpoint, seqno, cp.TreeSize, err)
	}
	if len(cp.Note) > 0 {
		pc, err := log.OpenCheckpointNote(cp.Note, v.notes)
		if err != nil {
			return fmt.Errorf("%w: transaction %d: the signed note: %v", ErrCheckpoint, seqno, err)
		}
		if pc.Size != cp.TreeSize || pc.Root != cp.Root {
			return fmt.Errorf("%w: transaction %d: the signed note is for another tree head", ErrCheckpoint, seqno)
		}
	}
	v.atCP = r
	// Copied, not resliced: the leaves before the checkpoint are done with.
	v.since = append(make([][]byte, 0, len(v.since)-int(n)+64), v.since[n:]...)
	v.report.CheckpointSize, v.report.CheckpointRoot, v.report.CheckpointSeqno = cp.TreeSize, cp.Root, seqno
	return nil
}

// Finish returns the report of everything added.
func (v *Verifier) Finish() (*Report, error) {
	if v.report.Transactions == 0 {
		return nil, fmt.Errorf("%w: the ledger is empty", ErrGenesis)
	}
	if v.pinned != nil && !v.pinnedSeen {
		return nil, fmt.Errorf("%w names another service certificate than the one given, and no recovery endorsed it: these files are another network's ledger", ErrGenesis)
	}
	r := v.rf.NewEmptyRange(0)
	if err := r.AppendRange(v.atCP, nil); err != nil {
		return nil, err
	}
	for _, h := range v.since {
		if err := r.Append(h, nil); err != nil {
			return nil, err
		}
	}
	root, err := r.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	rep := v.report
	copy(rep.Root[:], root)
	return &rep, nil
}

// printable is a key id as text if it is (Charter's are hex digits), else
// in hex.
func printable(kid []byte) string {
	for _, c := range kid {
		if c < 0x21 || c > 0x7e {
			return hex.EncodeToString(kid)
		}
	}
	return string(kid)
}
