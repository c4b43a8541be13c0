package apphost

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/charterlog/charter/internal/identity"
)

// Private maps (every map not named public:…) are stored encrypted under
// the ledger secret, in the ledger and in every node's store alike, so
// that ledger files, snapshots and nodes that do not hold the secret (not
// yet trusted) see neither their names, keys nor values:
//
//	stored map   "private:" + hex(HMAC-SHA256(Km, map))[:32]
//	stored key   HMAC-SHA256(Kk, map ‖ 0x00 ‖ key)
//	stored value nonce(12) ‖ AES-256-GCM(Ke, nonce, len(key) as 4 bytes BE ‖ key ‖ value,
//	             additional data: stored map ‖ 0x00 ‖ stored key)
//
// with Km, Kk, Ke derived from the ledger secret by HKDF-SHA256. A stored
// value names its plaintext key, so a scan recovers keys; the additional
// data binds it to its place, so values cannot be moved between keys.
// Equal keys give equal stored keys (so a map is one stored map, and reads
// and writes meet) — an observer learns how often a stored key changes,
// not what it is.

const privateMapPrefix = "private:"

// isPrivateMap reports whether an app map is private (CCF: any map whose
// name does not begin with "public:").
func isPrivateMap(m string) bool { return !strings.HasPrefix(m, "public:") }

// Cipher encrypts an app's private maps under the ledger secret, as
// described above. It is safe for concurrent use.
type Cipher struct {
	km, kk []byte
	aead   cipher.AEAD
}

// newCipher derives the three keys from the ledger secret.
func newCipher(secret []byte) (*Cipher, error) {
	if len(secret) != identity.LedgerSecretSize {
		return nil, errors.New("private maps: no ledger secret")
	}
	derive := func(label string) ([]byte, error) {
		return hkdf.Key(sha256.New, secret, nil, "charter private maps v1 "+label, 32)
	}
	km, err := derive("map names")
	if err != nil {
		return nil, err
	}
	kk, err := derive("keys")
	if err != nil {
		return nil, err
	}
	ke, err := derive("values")
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(ke)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Cipher{km: km, kk: kk, aead: aead}, nil
}

func (c *Cipher) storedMap(m string) string {
	h := hmac.New(sha256.New, c.km)
	h.Write([]byte(m))
	return privateMapPrefix + hex.EncodeToString(h.Sum(nil))[:32]
}

func (c *Cipher) storedKey(m string, key []byte) []byte {
	h := hmac.New(sha256.New, c.kk)
	h.Write([]byte(m))
	h.Write([]byte{0})
	h.Write(key)
	return h.Sum(nil)
}

func additionalData(sm string, sk []byte) []byte {
	ad := append([]byte(sm), 0)
	return append(ad, sk...)
}

func (c *Cipher) seal(sm string, sk, key, value []byte) ([]byte, error) {
	nonce := make([]byte, c.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	plain := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(key)+len(value)), uint32(len(key)))
	plain = append(append(plain, key...), value...)
	return c.aead.Seal(nonce, nonce, plain, additionalData(sm, sk)), nil
}

func (c *Cipher) open(sm string, sk, sealed []byte) (key, value []byte, err error) {
	ns := c.aead.NonceSize()
	if len(sealed) < ns {
		return nil, nil, fmt.Errorf("private maps: stored value of %d bytes", len(sealed))
	}
	plain, err := c.aead.Open(nil, sealed[:ns], sealed[ns:], additionalData(sm, sk))
	if err != nil {
		return nil, nil, fmt.Errorf("private maps: a stored value does not decrypt under the ledger secret: %w", err)
	}
	if len(plain) < 4 {
		return nil, nil, errors.New("private maps: malformed stored value")
	}
	n := binary.BigEndian.Uint32(plain)
	if uint64(n) > uint64(len(plain)-4) {
		return nil, nil, errors.New("private maps: malformed stored value")
	}
	return plain[4 : 4+n], plain[4+n:], nil
}
