package recovery

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// The ledger's records of the sharing and of the ledger secrets' versions
// (spec/recovery.md, "The ledger format"). The maps are governed
// (public:ccf.internal.*): write sets may write them, apps only read them.
const (
	MapSharing       = "public:ccf.internal.recovery.sharing" // KeySharing → SharingRecord
	MapShares        = "public:ccf.internal.recovery.shares"  // member id → ShareRecord
	MapLedgerSecrets = "public:ccf.internal.ledger_secrets"   // version (decimal, ≥ 1) → SecretRecord
	MapNodeSecrets   = "public:ccf.internal.ledger_secrets.nodes"
	MapRekey         = "public:ccf.internal.ledger_rekey" // KeyRekeyRequested → number

	KeySharing        = "current"
	KeyRekeyRequested = "requested"
)

// SecretSize is a ledger secret's size (identity.LedgerSecretSize; this
// package imports nothing of Charter's).
const SecretSize = 32

// SharingRecord is public:ccf.internal.recovery.sharing "current".
type SharingRecord struct {
	Threshold           int      `json:"threshold"`
	Commitment          []byte   `json:"commitment"`
	Members             []string `json:"members"`
	LedgerSecretVersion uint64   `json:"ledger_secret_version"`
	WrappedLedgerSecret []byte   `json:"wrapped_ledger_secret"`
	Basis               string   `json:"basis"`
}

// Sharing is the record's sharing, without the encrypted shares, to
// Verify and Combine submitted shares against.
func (r *SharingRecord) Sharing() *Sharing {
	return &Sharing{Threshold: r.Threshold, Commitment: r.Commitment}
}

// ShareRecord is one member's entry in public:ccf.internal.recovery.shares.
type ShareRecord struct {
	EncryptedShare []byte `json:"encrypted_share"`
	Basis          string `json:"basis"`
}

// SecretRecord is public:ccf.internal.ledger_secrets[version].
type SecretRecord struct {
	Version         uint64 `json:"version"`
	WrappedPrevious []byte `json:"wrapped_previous"`
	Check           string `json:"check"`
	Request         uint64 `json:"request"`
}

// NodeSecretRecord is public:ccf.internal.ledger_secrets.nodes[node id].
type NodeSecretRecord struct {
	Version   uint64 `json:"version"`
	Encrypted []byte `json:"encrypted"`
	// NodeKey is NodeKeyID of the key it is sealed to: a node whose key
	// changed (a recovered network's node under an old id) needs a new
	// copy.
	NodeKey string `json:"node_key"`
}

// NodeKeyID names a node's key in its copy: hex SHA-256 of the key's
// uncompressed point.
func NodeKeyID(pub *ecdh.PublicKey) string {
	h := sha256.Sum256(pub.Bytes())
	return hex.EncodeToString(h[:])
}

// Label is the label version v's secret is wrapped with, wherever it is.
func Label(v uint64) []byte { return []byte("charter ledger secret " + strconv.FormatUint(v, 10)) }

// Check is the public check value of secret, version v: it tells which
// version a secret is without revealing it.
func Check(secret []byte, v uint64) string {
	h := hmac.New(sha256.New, secret)
	h.Write(Label(v))
	return hex.EncodeToString(h.Sum(nil))
}

// ErrCheck: a secret is not the version its record names.
var ErrCheck = errors.New("recovery: this ledger secret does not match its version's check value")

// VerifyCheck reports whether secret is the version r records.
func (r *SecretRecord) VerifyCheck(secret []byte) error {
	want, err := hex.DecodeString(r.Check)
	got, _ := hex.DecodeString(Check(secret, r.Version))
	if err != nil || !hmac.Equal(want, got) {
		return fmt.Errorf("%w (version %d)", ErrCheck, r.Version)
	}
	return nil
}

func chainAEAD(successor []byte) (cipher.AEAD, error) {
	if len(successor) != SecretSize {
		return nil, fmt.Errorf("recovery: a ledger secret of %d bytes, want %d", len(successor), SecretSize)
	}
	k, err := hkdf.Key(sha256.New, successor, nil, "charter ledger secret wrapping v1", 32)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// WrapPrevious wraps secret version prevVersion under its successor, as
// public:ccf.internal.ledger_secrets records it.
func WrapPrevious(successor, previous []byte, prevVersion uint64) ([]byte, error) {
	aead, err := chainAEAD(successor)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, previous, Label(prevVersion)), nil
}

// UnwrapPrevious opens what WrapPrevious wrapped.
func UnwrapPrevious(successor, wrapped []byte, prevVersion uint64) ([]byte, error) {
	aead, err := chainAEAD(successor)
	if err != nil {
		return nil, err
	}
	if len(wrapped) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrUnwrap
	}
	pt, err := aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], Label(prevVersion))
	if err != nil || len(pt) != SecretSize {
		return nil, fmt.Errorf("%w (ledger secret version %d under its successor)", ErrUnwrap, prevVersion)
	}
	return pt, nil
}

// Unchain returns every secret, versions 0 to latest, from the latest one
// and the records of versions 1 to latest (records[v-1] is version v's),
// checking each against its record.
func Unchain(latest []byte, records []SecretRecord) ([][]byte, error) {
	n := uint64(len(records))
	out := make([][]byte, n+1)
	out[n] = latest
	for v := n; v >= 1; v-- {
		r := records[v-1]
		if r.Version != v {
			return nil, fmt.Errorf("recovery: ledger secret record %d names version %d", v, r.Version)
		}
		if err := r.VerifyCheck(out[v]); err != nil {
			return nil, err
		}
		prev, err := UnwrapPrevious(out[v], r.WrappedPrevious, v-1)
		if err != nil {
			return nil, err
		}
		out[v-1] = prev
	}
	return out, nil
}

func nodeInfo(v, nodeID uint64) []byte {
	return append(Label(v), []byte(" for node "+strconv.FormatUint(nodeID, 10))...)
}

var (
	hpkeKDF  = hpke.HKDFSHA256()
	hpkeAEAD = hpke.AES256GCM()
)

// SealForNode encrypts secret version v to node nodeID's key (HPKE,
// DHKEM(P-256)), as public:ccf.internal.ledger_secrets.nodes records it.
func SealForNode(pub *ecdh.PublicKey, nodeID, v uint64, secret []byte) ([]byte, error) {
	pk, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return hpke.Seal(pk, hpkeKDF, hpkeAEAD, nodeInfo(v, nodeID), secret)
}

// OpenForNode opens what SealForNode sealed to this node's key.
func OpenForNode(priv *ecdh.PrivateKey, nodeID, v uint64, sealed []byte) ([]byte, error) {
	k, err := hpke.NewDHKEMPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pt, err := hpke.Open(k, hpkeKDF, hpkeAEAD, nodeInfo(v, nodeID), sealed)
	if err != nil || len(pt) != SecretSize {
		return nil, fmt.Errorf("recovery: ledger secret version %d was not sealed to this node's key", v)
	}
	return pt, nil
}

// BasisMember is a recovery member as the basis names it.
type BasisMember struct {
	ID     string
	KeyPEM []byte // the encryption key PEM as stored
}

// Basis is what a sharing is made for (spec/recovery.md): a new basis
// calls for a new sharing.
func Basis(threshold int, latestVersion uint64, members []BasisMember) string {
	ms := slices.Clone(members)
	slices.SortFunc(ms, func(a, b BasisMember) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	h := sha256.New()
	fmt.Fprintf(h, "charter recovery sharing v1\nthreshold=%d\nsecret=%d\n", threshold, latestVersion)
	for _, m := range ms {
		kh := sha256.Sum256(m.KeyPEM)
		fmt.Fprintf(h, "%s %x\n", m.ID, kh)
	}
	return hex.EncodeToString(h.Sum(nil))
}
