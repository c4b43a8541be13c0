package cose

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/charterlog/charter/cbor"
	gocose "github.com/veraison/go-cose"
)

// Service keys.
//
// A service key is the public half of the key a transparency service signs
// receipts with. Charter publishes its keys as a COSE_KeySet
// (/.well-known/scitt-keys) and as a JWKS (/jwks), and names each key by its
// key identifier (kid):
//
//	kid = lowercase ASCII hex of SHA-256(DER SubjectPublicKeyInfo)
//
// carried as the 64 bytes of that text. This is the convention of the CCF
// SCITT ledger, so receipts of either service find their key the same way.
//
// Only EC2 keys on P-256, P-384 and P-521 and OKP Ed25519 keys are
// supported; each curve has exactly one algorithm (AlgorithmForKey), so a
// receipt whose alg does not fit its key's curve is rejected.

// ErrBadKey is returned for a COSE_Key, COSE_KeySet or JWK that is malformed,
// holds private key material, or uses an unsupported key type or curve.
var ErrBadKey = errors.New("cose: bad service key")

// maxKeySetSize bounds the number of keys in a key set, so that a hostile
// key set cannot make a verifier do unbounded work.
const maxKeySetSize = 256

// KeyID returns the key identifier of pub: the lowercase ASCII hex of the
// SHA-256 digest of its DER SubjectPublicKeyInfo (64 bytes).
func KeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	sum := sha256.Sum256(der)
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum[:])
	return out, nil
}

// Key is one public service key.
type Key struct {
	// Kid is the key identifier receipts name in their kid header (label 4).
	Kid []byte
	// Alg is the one signature algorithm the key is used with.
	Alg gocose.Algorithm
	// Public is an *ecdsa.PublicKey or an ed25519.PublicKey.
	Public crypto.PublicKey
}

// CurveAlgorithm is the ECDSA algorithm Charter signs with on curve c:
// ES256 for P-256, ES384 for P-384, ES512 for P-521; false for another
// curve.
func CurveAlgorithm(c elliptic.Curve) (gocose.Algorithm, bool) {
	switch c {
	case elliptic.P256():
		return gocose.AlgorithmES256, true
	case elliptic.P384():
		return gocose.AlgorithmES384, true
	case elliptic.P521():
		return gocose.AlgorithmES512, true
	}
	return 0, false
}

// AlgorithmForKey returns the COSE algorithm Charter uses with pub:
// ES256 for P-256, ES384 for P-384, ES512 for P-521, EdDSA for Ed25519.
func AlgorithmForKey(pub crypto.PublicKey) (gocose.Algorithm, error) {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return 0, fmt.Errorf("%w: nil ECDSA key", ErrBadKey)
		}
		if alg, ok := CurveAlgorithm(k.Curve); ok {
			return alg, nil
		}
		return 0, fmt.Errorf("%w: unsupported curve %s", ErrBadKey, k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return 0, fmt.Errorf("%w: Ed25519 key of %d bytes", ErrBadKey, len(k))
		}
		return gocose.AlgorithmEdDSA, nil
	}
	return 0, fmt.Errorf("%w: unsupported key type %T", ErrBadKey, pub)
}

// NewKey returns the Key for pub with its kid (KeyID) and algorithm
// (AlgorithmForKey) filled in.
func NewKey(pub crypto.PublicKey) (Key, error) {
	alg, err := AlgorithmForKey(pub)
	if err != nil {
		return Key{}, err
	}
	kid, err := KeyID(pub)
	if err != nil {
		return Key{}, err
	}
	return Key{Kid: kid, Alg: alg, Public: pub}, nil
}

// check validates k: a supported public key, alg matching its curve, and a
// non-empty kid.
func (k Key) check() error {
	alg, err := AlgorithmForKey(k.Public)
	if err != nil {
		return err
	}
	if k.Alg != alg {
		return fmt.Errorf("%w: alg %v does not fit a %v key", ErrBadKey, k.Alg, alg)
	}
	if len(k.Kid) == 0 {
		return fmt.Errorf("%w: empty kid", ErrBadKey)
	}
	return nil
}

// COSE_Key labels, RFC 9052 §7.1 and RFC 9053 §7.1.1, §7.2.
const (
	keyLabelKty = 1
	keyLabelKid = 2
	keyLabelAlg = 3
	keyLabelCrv = -1
	keyLabelX   = -2
	keyLabelY   = -3
	keyLabelD   = -4

	ktyOKP = 1
	ktyEC2 = 2

	crvP256    = 1
	crvP384    = 2
	crvP521    = 3
	crvEd25519 = 6
)

type curveInfo struct {
	crv   int64
	curve elliptic.Curve
	alg   gocose.Algorithm
	jwk   string
}

var ecCurves = []curveInfo{
	{crvP256, elliptic.P256(), gocose.AlgorithmES256, "P-256"},
	{crvP384, elliptic.P384(), gocose.AlgorithmES384, "P-384"},
	{crvP521, elliptic.P521(), gocose.AlgorithmES512, "P-521"},
}

func curveByCurve(c elliptic.Curve) (curveInfo, bool) {
	for _, ci := range ecCurves {
		if ci.curve == c {
			return ci, true
		}
	}
	return curveInfo{}, false
}

// ecCoordinates returns x and y of k, each left-padded to the field size.
// RFC 9053 §7.1.1: "Leading zero octets MUST be preserved."
func ecCoordinates(k *ecdsa.PublicKey) (x, y []byte, err error) {
	// crypto/ecdsa's uncompressed point encoding is 0x04 ‖ x ‖ y at full
	// field length, without going through the deprecated big.Int fields.
	point, err := k.Bytes()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	n := (len(point) - 1) / 2
	return point[1 : 1+n], point[1+n:], nil
}

// ecPublicKey makes the public key of the point (x, y), each coordinate the
// curve's full size, checking the point is on the curve. Its errors wrap no
// sentinel: COSE_Key and JWK decoding wrap them in their own.
func ecPublicKey(curve elliptic.Curve, x, y []byte) (*ecdsa.PublicKey, error) {
	n := (curve.Params().BitSize + 7) / 8
	if len(x) != n || len(y) != n {
		return nil, fmt.Errorf("EC coordinates of %d and %d bytes, want %d", len(x), len(y), n)
	}
	point := make([]byte, 0, 1+2*n)
	point = append(point, 4)
	point = append(point, x...)
	point = append(point, y...)
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
	if err != nil {
		return nil, err
	}
	return pub, nil
}

// MarshalCOSEKey encodes k as a COSE_Key (RFC 9052 §7) in Core Deterministic
// Encoding: kty, kid, alg, crv, x and, for EC2, y. A zero Kid is replaced by
// KeyID(k.Public) and a zero Alg by AlgorithmForKey(k.Public).
func MarshalCOSEKey(k Key) ([]byte, error) {
	m, err := coseKeyMap(k)
	if err != nil {
		return nil, err
	}
	return cbor.Marshal(m)
}

func fillKey(k Key) (Key, error) {
	if k.Alg == 0 {
		alg, err := AlgorithmForKey(k.Public)
		if err != nil {
			return Key{}, err
		}
		k.Alg = alg
	}
	if len(k.Kid) == 0 {
		kid, err := KeyID(k.Public)
		if err != nil {
			return Key{}, err
		}
		k.Kid = kid
	}
	return k, k.check()
}

func coseKeyMap(k Key) (map[int64]any, error) {
	k, err := fillKey(k)
	if err != nil {
		return nil, err
	}
	m := map[int64]any{
		keyLabelKid: k.Kid,
		keyLabelAlg: int64(k.Alg),
	}
	switch pub := k.Public.(type) {
	case *ecdsa.PublicKey:
		ci, _ := curveByCurve(pub.Curve)
		x, y, err := ecCoordinates(pub)
		if err != nil {
			return nil, err
		}
		m[keyLabelKty] = int64(ktyEC2)
		m[keyLabelCrv] = ci.crv
		m[keyLabelX] = x
		m[keyLabelY] = y
	case ed25519.PublicKey:
		m[keyLabelKty] = int64(ktyOKP)
		m[keyLabelCrv] = int64(crvEd25519)
		m[keyLabelX] = []byte(pub)
	}
	return m, nil
}

// ParseCOSEKey decodes one public COSE_Key. kty, crv and x (and y for EC2)
// are required; a key holding the private parameter d (-4) is rejected, as
// is an alg that does not fit the curve. A missing kid is computed with
// KeyID and a missing alg with AlgorithmForKey.
func ParseCOSEKey(b []byte) (Key, error) {
	var m map[int64]cbor.RawMessage
	if err := decMode.Unmarshal(b, &m); err != nil {
		return Key{}, fmt.Errorf("%w: COSE_Key: %v", ErrBadKey, err)
	}
	return coseKeyFromMap(m)
}

func coseKeyFromMap(m map[int64]cbor.RawMessage) (Key, error) {
	if _, ok := m[keyLabelD]; ok {
		return Key{}, fmt.Errorf("%w: COSE_Key holds a private key (label -4)", ErrBadKey)
	}
	var kty, crv int64
	if err := decodeIntField(m, keyLabelKty, &kty, true); err != nil {
		return Key{}, err
	}
	if err := decodeIntField(m, keyLabelCrv, &crv, true); err != nil {
		return Key{}, err
	}
	var x, y, kid []byte
	if err := decodeBytesField(m, keyLabelX, &x, true); err != nil {
		return Key{}, err
	}
	if err := decodeBytesField(m, keyLabelKid, &kid, false); err != nil {
		return Key{}, err
	}
	var alg int64
	if err := decodeIntField(m, keyLabelAlg, &alg, false); err != nil {
		return Key{}, err
	}
	var k Key
	switch kty {
	case ktyEC2:
		if err := decodeBytesField(m, keyLabelY, &y, true); err != nil {
			return Key{}, err
		}
		var curve elliptic.Curve
		for _, ci := range ecCurves {
			if ci.crv == crv {
				curve = ci.curve
			}
		}
		if curve == nil {
			return Key{}, fmt.Errorf("%w: unsupported EC2 curve %d", ErrBadKey, crv)
		}
		pub, err := ecPublicKey(curve, x, y)
		if err != nil {
			return Key{}, fmt.Errorf("%w: %v", ErrBadKey, err)
		}
		k.Public = pub
	case ktyOKP:
		if crv != crvEd25519 {
			return Key{}, fmt.Errorf("%w: unsupported OKP curve %d", ErrBadKey, crv)
		}
		if _, ok := m[keyLabelY]; ok {
			return Key{}, fmt.Errorf("%w: OKP key with a y coordinate", ErrBadKey)
		}
		if len(x) != ed25519.PublicKeySize {
			return Key{}, fmt.Errorf("%w: Ed25519 key of %d bytes", ErrBadKey, len(x))
		}
		k.Public = ed25519.PublicKey(bytes.Clone(x))
	default:
		return Key{}, fmt.Errorf("%w: unsupported kty %d", ErrBadKey, kty)
	}
	k.Kid = kid
	k.Alg = gocose.Algorithm(alg)
	return fillKey(k)
}

// decodeIntField decodes m[label] (an integer) into v.
func decodeIntField(m map[int64]cbor.RawMessage, label int64, v *int64, required bool) error {
	raw, ok := m[label]
	if !ok {
		if required {
			return fmt.Errorf("%w: COSE_Key without label %d", ErrBadKey, label)
		}
		return nil
	}
	if len(raw) == 0 || raw[0]>>5 > 1 {
		return fmt.Errorf("%w: COSE_Key label %d is not an integer", ErrBadKey, label)
	}
	if err := decMode.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: COSE_Key label %d: %v", ErrBadKey, label, err)
	}
	return nil
}

func decodeBytesField(m map[int64]cbor.RawMessage, label int64, v *[]byte, required bool) error {
	raw, ok := m[label]
	if !ok {
		if required {
			return fmt.Errorf("%w: COSE_Key without label %d", ErrBadKey, label)
		}
		return nil
	}
	b, err := cbor.DecodeBytes(raw)
	if err != nil {
		return fmt.Errorf("%w: COSE_Key label %d: %v", ErrBadKey, label, err)
	}
	*v = b
	return nil
}

// MarshalKeySet encodes keys as a COSE_KeySet (RFC 9052 §7: an array of
// COSE_Key).
func MarshalKeySet(keys []Key) ([]byte, error) {
	ms := make([]map[int64]any, 0, len(keys))
	for _, k := range keys {
		m, err := coseKeyMap(k)
		if err != nil {
			return nil, err
		}
		ms = append(ms, m)
	}
	return cbor.Marshal(ms)
}

// ParseKeySet decodes a COSE_KeySet of at most 256 public keys. Two entries
// with the same kid must hold the same key; repeats are dropped.
func ParseKeySet(b []byte) ([]Key, error) {
	var ms []map[int64]cbor.RawMessage
	if err := decMode.Unmarshal(b, &ms); err != nil {
		return nil, fmt.Errorf("%w: COSE_KeySet: %v", ErrBadKey, err)
	}
	if ms == nil {
		return nil, fmt.Errorf("%w: COSE_KeySet is not an array", ErrBadKey)
	}
	keys := make([]Key, 0, len(ms))
	for i, m := range ms {
		k, err := coseKeyFromMap(m)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		keys = append(keys, k)
	}
	return dedupKeys(keys)
}

// dedupKeys drops repeated keys and rejects two different keys under one
// kid (which would make the verdict depend on the order of the set).
func dedupKeys(keys []Key) ([]Key, error) {
	if len(keys) > maxKeySetSize {
		return nil, fmt.Errorf("%w: %d keys, at most %d", ErrBadKey, len(keys), maxKeySetSize)
	}
	out := keys[:0:0]
next:
	for _, k := range keys {
		for _, o := range out {
			if bytes.Equal(o.Kid, k.Kid) {
				if o.Alg != k.Alg || !publicEqual(o.Public, k.Public) {
					return nil, fmt.Errorf("%w: two different keys with kid %q", ErrBadKey, k.Kid)
				}
				continue next
			}
		}
		out = append(out, k)
	}
	return out, nil
}

func publicEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	ea, ok := a.(equaler)
	return ok && ea.Equal(b)
}

// KeySet is the set of service keys a verifier trusts.
type KeySet []Key

// Lookup returns the key whose kid is kid.
func (ks KeySet) Lookup(kid []byte) (Key, bool) {
	for _, k := range ks {
		if bytes.Equal(k.Kid, kid) {
			return k, true
		}
	}
	return Key{}, false
}

// MarshalJWKS encodes keys as a JWK Set: {"keys": [{kty, crv, x, y, kid,
// alg, use: "sig"}]}, with kid the key's kid as text.
func MarshalJWKS(keys []Key) ([]byte, error) {
	set := struct {
		Keys []JWK `json:"keys"`
	}{Keys: []JWK{}}
	for _, k := range keys {
		k, err := fillKey(k)
		if err != nil {
			return nil, err
		}
		j, err := JWKFromKey(k.Public)
		if err != nil {
			return nil, err
		}
		j.Kid, j.Alg, j.Use = string(k.Kid), k.Alg.String(), "sig"
		set.Keys = append(set.Keys, j)
	}
	return json.Marshal(set)
}

// ParseJWKS decodes a JWK Set of public keys. A missing kid is computed with
// KeyID; a present alg must fit the curve.
func ParseJWKS(b []byte) ([]Key, error) {
	var set struct {
		Keys []JWK `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("%w: JWKS: %v", ErrBadKey, err)
	}
	if set.Keys == nil {
		return nil, fmt.Errorf("%w: JWKS without \"keys\"", ErrBadKey)
	}
	keys := make([]Key, 0, len(set.Keys))
	for i, j := range set.Keys {
		k, err := keyFromJWK(j)
		if err != nil {
			return nil, fmt.Errorf("JWK %d: %w", i, err)
		}
		keys = append(keys, k)
	}
	return dedupKeys(keys)
}

// keyFromJWK is a key set's key: public, EC or Ed25519 only (what Key
// supports), with nothing of another key type in it.
func keyFromJWK(j JWK) (Key, error) {
	if j.D != "" {
		return Key{}, fmt.Errorf("%w: JWK holds a private key", ErrBadKey)
	}
	switch {
	case j.Kty != "EC" && j.Kty != "OKP":
		return Key{}, fmt.Errorf("%w: unsupported kty %q", ErrBadKey, j.Kty)
	case j.Kty == "OKP" && j.Y != "":
		return Key{}, fmt.Errorf("%w: unsupported OKP key (crv %q)", ErrBadKey, j.Crv)
	}
	pub, err := j.PublicKey()
	if err != nil {
		return Key{}, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	k := Key{Public: pub}
	if j.Alg != "" {
		alg, ok := algByName[j.Alg]
		if !ok {
			return Key{}, fmt.Errorf("%w: unsupported alg %q", ErrBadKey, j.Alg)
		}
		k.Alg = alg
	}
	if j.Kid != "" {
		k.Kid = []byte(j.Kid)
	}
	return fillKey(k)
}

var algByName = map[string]gocose.Algorithm{
	"ES256": gocose.AlgorithmES256,
	"ES384": gocose.AlgorithmES384,
	"ES512": gocose.AlgorithmES512,
	"EdDSA": gocose.AlgorithmEdDSA,
}
