// Package recovery owns the consortium's hold on the ledger secrets: the
// recovery key that wraps them, split into shares so that a threshold of
// recovery members, and no fewer, can bring a lost service back.
//
// The recovery key is a random scalar of Ristretto255. It is split with
// Shamir's scheme over that scalar field, with Feldman's commitments
// (github.com/cloudflare/circl/secretsharing): the commitments are public
// (they go in the ledger) and let the service check each submitted share
// on its own, so a wrong or corrupted share is refused when it is
// submitted, not discovered as a wrong key once the threshold is reached.
// Each share is encrypted to one recovery member's RSA public key with
// RSA-OAEP-SHA256, as CCF encrypts its members' shares, so a CCF member's
// encryption key and tooling work unchanged.
//
// The ledger secrets are wrapped (AES-256-GCM) under a key derived from
// the recovery key; the shares never wrap anything themselves.
//
// Everything here is pure: no I/O, no global state.
package recovery

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"github.com/cloudflare/circl/group"
	"github.com/cloudflare/circl/secretsharing"
)

var g = group.Ristretto255

// Sizes of the encodings: a scalar and a compressed element are 32 bytes.
const (
	scalarSize = 32
	elemSize   = 32
	// ShareSize is a decrypted share: its id and value.
	ShareSize = 2 * scalarSize
	// MaxShares bounds the recovery members a key is split among.
	MaxShares = 100
)

// Errors, each a distinct answer to a member.
var (
	ErrThreshold    = errors.New("recovery: the threshold must be at least 1 and at most the number of recovery members")
	ErrBadShare     = errors.New("recovery: this is not a share of the current recovery key")
	ErrDuplicate    = errors.New("recovery: this share was already submitted")
	ErrTooFewShares = errors.New("recovery: fewer shares than the threshold")
	ErrMalformed    = errors.New("recovery: malformed share or commitment")
	ErrUnwrap       = errors.New("recovery: the recovery key does not open these wrapped secrets")
)

// A Key is a recovery key.
type Key struct{ s group.Scalar }

// NewKey returns a random recovery key.
func NewKey(rnd io.Reader) Key { return Key{g.RandomNonZeroScalar(rnd)} }

// Equal reports whether k and o are the same key.
func (k Key) Equal(o Key) bool { return k.s != nil && o.s != nil && k.s.IsEqual(o.s) }

// wrappingKey is the AES-256 key derived from k.
func (k Key) wrappingKey() ([]byte, error) {
	b, err := k.s.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return hkdf.Key(sha256.New, b, nil, "charter recovery wrapping key v1", 32)
}

func (k Key) aead() (cipher.AEAD, error) {
	wk, err := k.wrappingKey()
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(wk)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Wrap encrypts secret (the ledger secrets) under k; label (for instance
// the ledger secrets' version) is authenticated with it.
func (k Key) Wrap(secret, label []byte) ([]byte, error) {
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return aead.Seal(nonce, nonce, secret, label), nil
}

// Unwrap opens what Wrap wrapped under k with the same label.
func (k Key) Unwrap(wrapped, label []byte) ([]byte, error) {
	aead, err := k.aead()
	if err != nil {
		return nil, err
	}
	if len(wrapped) < aead.NonceSize()+aead.Overhead() {
		return nil, ErrUnwrap
	}
	pt, err := aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], label)
	if err != nil {
		return nil, ErrUnwrap
	}
	return pt, nil
}

// A Member is a recovery member: an id and the RSA key its share is
// encrypted to.
type Member struct {
	ID            string
	EncryptionKey *rsa.PublicKey
}

// A Sharing is a recovery key split among recovery members: what the
// ledger records.
type Sharing struct {
	// Threshold is how many shares recover the key.
	Threshold int
	// Commitment is the Feldman commitment to the sharing polynomial:
	// Threshold compressed Ristretto255 elements, public.
	Commitment []byte
	// Encrypted holds each recovery member's share, RSA-OAEP-SHA256
	// encrypted to its key.
	Encrypted map[string][]byte
}

// Split splits k among members so that threshold of their shares recover
// it.
func Split(rnd io.Reader, k Key, threshold int, members []Member) (*Sharing, error) {
	if threshold < 1 || threshold > len(members) || len(members) > MaxShares {
		return nil, fmt.Errorf("%w (threshold %d, %d recovery members)", ErrThreshold, threshold, len(members))
	}
	seen := map[string]bool{}
	for _, m := range members {
		if m.EncryptionKey == nil || seen[m.ID] {
			return nil, fmt.Errorf("recovery: member %q has no encryption key, or is listed twice", m.ID)
		}
		seen[m.ID] = true
	}
	ss := secretsharing.New(rnd, uint(threshold-1), k.s)
	var commitment []byte
	for _, e := range ss.CommitSecret() {
		b, err := e.MarshalBinaryCompress()
		if err != nil {
			return nil, err
		}
		commitment = append(commitment, b...)
	}
	out := &Sharing{Threshold: threshold, Commitment: commitment, Encrypted: map[string][]byte{}}
	for i, share := range ss.Share(uint(len(members))) {
		plain, err := encodeShare(share)
		if err != nil {
			return nil, err
		}
		ct, err := rsa.EncryptOAEP(sha256.New(), rnd, members[i].EncryptionKey, plain, nil)
		if err != nil {
			return nil, fmt.Errorf("recovery: encrypting member %q's share: %w", members[i].ID, err)
		}
		out.Encrypted[members[i].ID] = ct
	}
	return out, nil
}

// DecryptShare is what a recovery member does with its encrypted share
// and its private key (as `openssl pkeyutl -decrypt -pkeyopt
// rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha256` would).
func DecryptShare(priv *rsa.PrivateKey, encrypted []byte) ([]byte, error) {
	share, err := rsa.DecryptOAEP(sha256.New(), nil, priv, encrypted, nil)
	if err != nil {
		return nil, fmt.Errorf("recovery: this encrypted share is not for this key: %w", err)
	}
	if len(share) != ShareSize {
		return nil, ErrMalformed
	}
	return share, nil
}

func encodeShare(s secretsharing.Share) ([]byte, error) {
	id, err := s.ID.MarshalBinary()
	if err != nil {
		return nil, err
	}
	v, err := s.Value.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return append(id, v...), nil
}

func decodeShare(b []byte) (secretsharing.Share, error) {
	if len(b) != ShareSize {
		return secretsharing.Share{}, ErrMalformed
	}
	s := secretsharing.Share{ID: g.NewScalar(), Value: g.NewScalar()}
	if s.ID.UnmarshalBinary(b[:scalarSize]) != nil || s.Value.UnmarshalBinary(b[scalarSize:]) != nil || s.ID.IsZero() {
		return secretsharing.Share{}, ErrMalformed
	}
	return s, nil
}

func decodeCommitment(c []byte, threshold int) (secretsharing.SecretCommitment, error) {
	if threshold < 1 || threshold > MaxShares || len(c) != threshold*elemSize {
		return nil, ErrMalformed
	}
	out := make(secretsharing.SecretCommitment, threshold)
	for i := range out {
		out[i] = g.NewElement()
		if err := out[i].UnmarshalBinary(c[i*elemSize : (i+1)*elemSize]); err != nil {
			return nil, ErrMalformed
		}
	}
	return out, nil
}

// Verify checks a decrypted share against the sharing's commitment: it is
// a share of the key the commitment commits to.
func (s *Sharing) Verify(share []byte) error {
	c, err := decodeCommitment(s.Commitment, s.Threshold)
	if err != nil {
		return err
	}
	sh, err := decodeShare(share)
	if err != nil {
		return err
	}
	if !secretsharing.Verify(uint(s.Threshold-1), sh, c) {
		return ErrBadShare
	}
	return nil
}

// Combine recovers the key from at least Threshold verified shares. Each
// share is checked again; the same share twice is ErrDuplicate.
func (s *Sharing) Combine(shares [][]byte) (Key, error) {
	var parsed []secretsharing.Share
	for i, b := range shares {
		if err := s.Verify(b); err != nil {
			return Key{}, err
		}
		for _, prev := range shares[:i] {
			if bytes.Equal(prev[:scalarSize], b[:scalarSize]) {
				return Key{}, ErrDuplicate
			}
		}
		sh, _ := decodeShare(b)
		parsed = append(parsed, sh)
	}
	if len(parsed) < s.Threshold {
		return Key{}, fmt.Errorf("%w (%d of %d)", ErrTooFewShares, len(parsed), s.Threshold)
	}
	secret, err := secretsharing.Recover(uint(s.Threshold-1), parsed)
	if err != nil {
		return Key{}, err
	}
	return Key{secret}, nil
}

// ShareID identifies a decrypted share (its x coordinate) without
// revealing its value: two submissions of the same share have the same id.
func ShareID(share []byte) ([]byte, error) {
	if len(share) != ShareSize {
		return nil, ErrMalformed
	}
	return bytes.Clone(share[:scalarSize]), nil
}
