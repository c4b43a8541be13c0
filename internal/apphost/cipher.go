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
	"sync"

	"github.com/charterlog/charter/internal/identity"
)

// Private maps (every map not named public:…) are stored encrypted under
// the ledger secrets, in the ledger and in every node's store alike, so
// that ledger files, snapshots and nodes that do not hold the secrets (not
// yet trusted) see neither their names, keys nor values:
//
//	stored map   "private:" + hex(HMAC-SHA256(Km, map))[:32]
//	stored key   HMAC-SHA256(Kk, map ‖ 0x00 ‖ key)
//	stored value 0x01 ‖ version (8 bytes BE) ‖ nonce(12) ‖
//	             AES-256-GCM(Ke(version), nonce, len(key) as 4 bytes BE ‖ key ‖ value,
//	             additional data: stored map ‖ 0x00 ‖ stored key ‖ version (8 bytes BE))
//
// with Km and Kk derived from ledger secret version 0 and Ke(v) from
// version v, by HKDF-SHA256. The ledger secret has versions
// (trigger_ledger_rekey, spec/recovery.md): a value names the version that
// sealed it, and writes use the latest. Names and keys stay derived from
// the first version on purpose: a rekey then leaves every stored key where
// it is (no map is rewritten, reads and writes across a rekey meet), at
// the cost that whoever learns version 0 can tell which stored keys are
// which map and key forever; the values written after a rekey need the new
// version.
//
// A stored value names its plaintext key, so a scan recovers keys; the
// additional data binds it to its place, so values cannot be moved between
// keys, nor relabelled with another version. Equal keys give equal stored
// keys (so a map is one stored map, and reads and writes meet) — an
// observer learns how often a stored key changes, not what it is.
//
// Values written before versions existed (nonce ‖ AES-256-GCM under
// Ke(0), additional data without the version) are still read: a value
// that does not open as versioned is tried as one of those.

const privateMapPrefix = "private:"

// isPrivateMap reports whether an app map is private (CCF: any map whose
// name does not begin with "public:").
func isPrivateMap(m string) bool { return !strings.HasPrefix(m, "public:") }

// Secrets are the node's ledger secrets, by version.
type Secrets interface {
	// LedgerSecret returns version v (0: the first).
	LedgerSecret(v uint64) ([]byte, error)
	// LatestLedgerSecret returns the version private writes use now.
	LatestLedgerSecret() (uint64, []byte, error)
}

// Cipher encrypts an app's private maps under the ledger secrets, as
// described above. It is safe for concurrent use.
type Cipher struct {
	km, kk []byte
	src    Secrets

	mu    sync.Mutex
	aeads map[uint64]cipher.AEAD // by version, derived once
}

// versionTag marks a versioned stored value.
const versionTag = 0x01

// newCipher derives the name and key keys from version 0.
func newCipher(src Secrets) (*Cipher, error) {
	secret, err := src.LedgerSecret(0)
	if err != nil {
		return nil, err
	}
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
	c := &Cipher{km: km, kk: kk, src: src, aeads: map[uint64]cipher.AEAD{}}
	if _, err := c.aead(0, secret); err != nil {
		return nil, err
	}
	return c, nil
}

// aead is Ke(v)'s cipher; secret is version v, or nil to ask src.
func (c *Cipher) aead(v uint64, secret []byte) (cipher.AEAD, error) {
	c.mu.Lock()
	a, ok := c.aeads[v]
	c.mu.Unlock()
	if ok {
		return a, nil
	}
	if secret == nil {
		s, err := c.src.LedgerSecret(v)
		if err != nil {
			return nil, fmt.Errorf("private maps: ledger secret version %d: %w", v, err)
		}
		secret = s
	}
	if len(secret) != identity.LedgerSecretSize {
		return nil, fmt.Errorf("private maps: ledger secret version %d of %d bytes", v, len(secret))
	}
	ke, err := hkdf.Key(sha256.New, secret, nil, "charter private maps v1 values", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(ke)
	if err != nil {
		return nil, err
	}
	a, err = cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.aeads[v] = a
	c.mu.Unlock()
	return a, nil
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

// seal encrypts under the latest ledger secret version.
func (c *Cipher) seal(sm string, sk, key, value []byte) ([]byte, error) {
	v, secret, err := c.src.LatestLedgerSecret()
	if err != nil {
		return nil, fmt.Errorf("private maps: the latest ledger secret: %w", err)
	}
	return c.sealVersion(v, secret, sm, sk, key, value)
}

func (c *Cipher) sealVersion(v uint64, secret []byte, sm string, sk, key, value []byte) ([]byte, error) {
	aead, err := c.aead(v, secret)
	if err != nil {
		return nil, err
	}
	head := binary.BigEndian.AppendUint64([]byte{versionTag}, v)
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	plain := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(key)+len(value)), uint32(len(key)))
	plain = append(append(plain, key...), value...)
	out := append(head, nonce...)
	return aead.Seal(out, nonce, plain, binary.BigEndian.AppendUint64(additionalData(sm, sk), v)), nil
}

func (c *Cipher) open(sm string, sk, sealed []byte) (key, value []byte, err error) {
	plain, err := c.openVersioned(sm, sk, sealed)
	if err != nil {
		// Perhaps a value from before versions: nonce ‖ ciphertext
		// under version 0, without the version in the additional data.
		legacy, _ := c.aead(0, nil)
		ns := legacy.NonceSize()
		if len(sealed) < ns {
			return nil, nil, err
		}
		p, lerr := legacy.Open(nil, sealed[:ns], sealed[ns:], additionalData(sm, sk))
		if lerr != nil {
			return nil, nil, err
		}
		plain = p
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

func (c *Cipher) openVersioned(sm string, sk, sealed []byte) ([]byte, error) {
	if len(sealed) < 9 || sealed[0] != versionTag {
		return nil, fmt.Errorf("private maps: stored value of %d bytes names no ledger secret version", len(sealed))
	}
	v := binary.BigEndian.Uint64(sealed[1:9])
	aead, err := c.aead(v, nil)
	if err != nil {
		return nil, err
	}
	body := sealed[9:]
	ns := aead.NonceSize()
	if len(body) < ns {
		return nil, fmt.Errorf("private maps: stored value of %d bytes", len(sealed))
	}
	plain, err := aead.Open(nil, body[:ns], body[ns:], binary.BigEndian.AppendUint64(additionalData(sm, sk), v))
	if err != nil {
		return nil, fmt.Errorf("private maps: a stored value does not decrypt under ledger secret version %d: %w", v, err)
	}
	return plain, nil
}
