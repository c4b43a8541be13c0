package node

import (
	"crypto/rand"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/log"
)

// ReceiptSubject is the sub claim of every Charter receipt. The protected
// header is signed once per checkpoint and shared by all receipts under it,
// so it names the checkpoint, not any one statement.
const ReceiptSubject = "charter.checkpoint"

// treeHeadSigner signs checkpoints with the service key (COSE, for
// receipts) and the note key (C2SP signed note, for witnesses and auditors).
type treeHeadSigner struct {
	id     *identity.Identity
	key    cose.Key
	issuer string
}

var _ ledger.TreeHeadSigner = (*treeHeadSigner)(nil)

func newTreeHeadSigner(id *identity.Identity, issuer string) (*treeHeadSigner, error) {
	k, err := cose.NewKey(&id.ServiceKey.PublicKey)
	if err != nil {
		return nil, err
	}
	return &treeHeadSigner{id: id, key: k, issuer: issuer}, nil
}

// SignTreeHead signs the tree head once for every receipt under it. The
// tree size is a signed claim (cose.ReceiptClaims.TreeSize), so a receipt's
// tree size and leaf index cannot be rewritten without failing
// verification (spec/formats.md, "Signed tree size").
func (s *treeHeadSigner) SignTreeHead(size uint64, root [32]byte, at time.Time) (*log.Checkpoint, error) {
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
