package identity

import (
	"crypto/rand"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/log"
)

// ReceiptSubject is the sub claim of every Charter receipt. The protected
// header is signed once per checkpoint and shared by all receipts under it,
// so it names the checkpoint, not any one statement.
const ReceiptSubject = "charter.checkpoint"

// TreeHeadSigner signs checkpoints with the service key (COSE, for
// receipts) and the note key (C2SP signed note, for witnesses and
// auditors): the ledger's checkpointer signs through it
// (ledger.TreeHeadSigner).
type TreeHeadSigner struct {
	id     *Identity
	key    cose.Key
	issuer string
}

// NewTreeHeadSigner signs as issuer with id's keys, which must hold the
// service's secrets.
func NewTreeHeadSigner(id *Identity, issuer string) (*TreeHeadSigner, error) {
	k, err := cose.NewKey(&id.ServiceKey.PublicKey)
	if err != nil {
		return nil, err
	}
	return &TreeHeadSigner{id: id, key: k, issuer: issuer}, nil
}

// SignTreeHead signs the tree head once for every receipt under it. The
// tree size is a signed claim (cose.ReceiptClaims.TreeSize), so a receipt's
// tree size and leaf index cannot be rewritten without failing
// verification (spec/formats.md, "Signed tree size").
func (s *TreeHeadSigner) SignTreeHead(size uint64, root [32]byte, at time.Time) (*log.Checkpoint, error) {
	claims := cose.ReceiptClaims{Issuer: s.issuer, Subject: ReceiptSubject, IssuedAt: at.Unix(), TreeSize: size}
	prot, sig, err := cose.SignTreeHead(rand.Reader, s.id.ServiceKey, s.key.Alg, s.key.Kid, claims, root[:])
	if err != nil {
		return nil, err
	}
	n, err := log.SignCheckpointNote(s.issuer, size, root, s.id.NoteSigner)
	if err != nil {
		return nil, err
	}
	return &log.Checkpoint{TreeSize: size, Root: root, IssuedAt: at.Unix(), Protected: prot, Signature: sig, Note: n}, nil
}
