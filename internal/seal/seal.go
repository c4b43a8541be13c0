// Package seal owns secrets at rest: the bytes a node writes to its data
// directory that only that node, running the same code, may read back (the
// service key, the note key, the ledger secrets, its own key).
//
// A Sealer encrypts with AES-256-GCM under a key that is never in the data
// directory:
//   - on sev-snp, a key the AMD secure processor derives from the chip's
//     VCEK mixed with the guest's launch measurement and policy (SNPKey):
//     only the same code, under the same policy, on the same chip derives
//     it again, so a copied disk, or the same disk under other code, cannot
//     be unsealed;
//   - on virtual, a key the operator keeps in a file outside the data
//     directory (FileKey). Whoever can read that file can unseal: it keeps
//     secrets out of backups and copies of the data directory, and nothing
//     more. Virtual is for development only.
//
// A sealed blob names the key it was sealed under (a fingerprint, not the
// key), so a node that cannot unseal (a new chip, new code) learns it as
// ErrOtherKey, distinct from a damaged blob (ErrDamaged), and rejoins by
// attestation to receive the secrets again.
package seal

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// Errors of Unseal.
var (
	// ErrOtherKey: the blob was sealed under a key this Sealer does not
	// hold (another chip, other code, another operator key).
	ErrOtherKey = errors.New("seal: sealed under another key")
	// ErrDamaged: the blob does not parse, or fails authentication
	// (altered, truncated, or sealed for another purpose).
	ErrDamaged = errors.New("seal: sealed data is damaged or was sealed for another purpose")
)

// Kinds of sealing keys, as recorded in a blob.
const (
	KindVirtual byte = 'v'
	KindSNP     byte = 's'
)

// magic starts every sealed blob.
const magic = "CHARTER-SEALED-1\n"

const (
	keyIDSize = 16
	nonceSize = 12
)

// A Sealer seals and unseals under one root key.
type Sealer struct {
	kind  byte
	root  []byte
	keyID [keyIDSize]byte
}

// New returns a Sealer for a 32-byte root key of the given kind.
func New(kind byte, root []byte) (*Sealer, error) {
	if kind != KindVirtual && kind != KindSNP {
		return nil, fmt.Errorf("seal: unknown key kind %q", kind)
	}
	if len(root) != 32 {
		return nil, fmt.Errorf("seal: a root key is 32 bytes, not %d", len(root))
	}
	s := &Sealer{kind: kind, root: bytes.Clone(root)}
	id, err := hkdf.Key(sha256.New, s.root, nil, "charter seal key id", keyIDSize)
	if err != nil {
		return nil, err
	}
	copy(s.keyID[:], id)
	return s, nil
}

// Kind is the kind of the Sealer's root key.
func (s *Sealer) Kind() byte { return s.kind }

// aead returns the cipher for purpose: each purpose has its own key, so a
// blob sealed for one purpose never opens as another.
func (s *Sealer) aead(purpose string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, s.root, nil, "charter seal v1 "+purpose, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// header is what precedes the nonce: magic, kind and key id. It is also
// authenticated.
func (s *Sealer) header() []byte {
	h := append([]byte(magic), s.kind)
	return append(h, s.keyID[:]...)
}

// Seal encrypts plaintext for purpose (a name such as "service key";
// Unseal must be given the same).
func (s *Sealer) Seal(purpose string, plaintext []byte) ([]byte, error) {
	aead, err := s.aead(purpose)
	if err != nil {
		return nil, err
	}
	out := s.header()
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, append(s.header(), purpose...)), nil
}

// Unseal decrypts what Seal sealed for purpose under this Sealer's key.
func (s *Sealer) Unseal(purpose string, sealed []byte) ([]byte, error) {
	head := s.header()
	if len(sealed) < len(head)+nonceSize || !bytes.HasPrefix(sealed, []byte(magic)) {
		return nil, ErrDamaged
	}
	if !bytes.Equal(sealed[:len(head)], head) {
		return nil, fmt.Errorf("%w (a %s key)", ErrOtherKey, KindName(sealed[len(magic)]))
	}
	aead, err := s.aead(purpose)
	if err != nil {
		return nil, err
	}
	nonce := sealed[len(head) : len(head)+nonceSize]
	pt, err := aead.Open(nil, nonce, sealed[len(head)+nonceSize:], append(head, purpose...))
	if err != nil {
		return nil, ErrDamaged
	}
	return pt, nil
}

// IsSealed reports whether b is a sealed blob (of any key).
func IsSealed(b []byte) bool { return bytes.HasPrefix(b, []byte(magic)) }

// KindName names a key kind for messages.
func KindName(kind byte) string {
	switch kind {
	case KindVirtual:
		return "virtual"
	case KindSNP:
		return "sev-snp"
	}
	return fmt.Sprintf("unknown (%q)", kind)
}
