package cose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
)

// JWK is a JSON Web Key (RFC 7517) of the kinds Charter reads and writes —
// EC on P-256, P-384 and P-521 (RFC 7518 §6.2), RSA (§6.3) and OKP Ed25519
// (RFC 8037) — with each member as its JSON text. It is the one JWK codec:
// key sets (ParseJWKS, MarshalJWKS), JWT signing keys registered by
// governance, and the JS apps' PEM ⇄ JWK conversions.
//
// Marshalled with encoding/json, members appear in the order below and
// empty ones are left out.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	// D is the private exponent (RSA) or scalar (EC), or the seed
	// (Ed25519); P, Q, DP, DQ and QI are RSA's other private members.
	D   string `json:"d,omitempty"`
	P   string `json:"p,omitempty"`
	Q   string `json:"q,omitempty"`
	DP  string `json:"dp,omitempty"`
	DQ  string `json:"dq,omitempty"`
	QI  string `json:"qi,omitempty"`
	Kid string `json:"kid,omitempty"`
	Alg string `json:"alg,omitempty"`
	Use string `json:"use,omitempty"`
}

// ErrBadJWK: a JWK that does not decode into a key of a supported kind, or a
// key that has no JWK. Key sets wrap it in ErrBadKey too.
var ErrBadJWK = errors.New("cose: malformed JWK")

// jwkB64 is base64url without padding (RFC 7515 §2), strict: trailing bits
// must be zero, so that each value has one encoding.
var jwkB64 = base64.RawURLEncoding.Strict()

// Members returns j's non-empty members by name.
func (j JWK) Members() map[string]string {
	out := map[string]string{}
	for name, v := range map[string]string{
		"kty": j.Kty, "crv": j.Crv, "x": j.X, "y": j.Y, "n": j.N, "e": j.E,
		"d": j.D, "p": j.P, "q": j.Q, "dp": j.DP, "dq": j.DQ, "qi": j.QI,
		"kid": j.Kid, "alg": j.Alg, "use": j.Use,
	} {
		if v != "" {
			out[name] = v
		}
	}
	return out
}

// JWKFromKey returns the JWK of key, one of *ecdsa.PublicKey and
// *ecdsa.PrivateKey (P-256, P-384, P-521), *rsa.PublicKey and
// *rsa.PrivateKey (two primes), ed25519.PublicKey and ed25519.PrivateKey.
// A private key's JWK holds its private members too. EC coordinates and
// scalars are left-padded to the field size (RFC 7518 §6.2.1.2: "The
// length of this octet string MUST be the full size of a coordinate").
// Kid, Alg and Use are left empty.
func JWKFromKey(key any) (JWK, error) {
	enc := jwkB64.EncodeToString
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		j, err := JWKFromKey(&k.PublicKey)
		if err != nil {
			return JWK{}, err
		}
		j.D = enc(k.D.FillBytes(make([]byte, (k.Curve.Params().BitSize+7)/8)))
		return j, nil
	case *ecdsa.PublicKey:
		// The curve's own name: "P-256", "P-384" and "P-521" are the JWK
		// names (RFC 7518 §6.2.1.1), and the JS apps may convert a key on
		// another curve the standard library parses.
		x, y, err := ecCoordinates(k)
		if err != nil {
			return JWK{}, err
		}
		return JWK{Kty: "EC", Crv: k.Curve.Params().Name, X: enc(x), Y: enc(y)}, nil
	case *rsa.PrivateKey:
		if len(k.Primes) != 2 {
			return JWK{}, fmt.Errorf("%w: RSA key of %d primes", ErrBadJWK, len(k.Primes))
		}
		j, _ := JWKFromKey(&k.PublicKey)
		pre := *k // Precompute on a copy: the caller's key is not ours to change
		pre.Precompute()
		j.D, j.P, j.Q = enc(k.D.Bytes()), enc(k.Primes[0].Bytes()), enc(k.Primes[1].Bytes())
		j.DP, j.DQ, j.QI = enc(pre.Precomputed.Dp.Bytes()), enc(pre.Precomputed.Dq.Bytes()), enc(pre.Precomputed.Qinv.Bytes())
		return j, nil
	case *rsa.PublicKey:
		return JWK{Kty: "RSA", N: enc(k.N.Bytes()), E: enc(big.NewInt(int64(k.E)).Bytes())}, nil
	case ed25519.PrivateKey:
		j, err := JWKFromKey(k.Public())
		j.D = enc(k.Seed())
		return j, err
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return JWK{}, fmt.Errorf("%w: Ed25519 key of %d bytes", ErrBadJWK, len(k))
		}
		return JWK{Kty: "OKP", Crv: "Ed25519", X: enc(k)}, nil
	}
	return JWK{}, fmt.Errorf("%w: cannot express a %T as a JWK", ErrBadJWK, key)
}

// decode decodes the named base64url members, each of which must be
// present.
func (j JWK) decode(names ...string) ([][]byte, error) {
	m := j.Members()
	out := make([][]byte, len(names))
	for i, name := range names {
		v, ok := m[name]
		if !ok {
			return nil, fmt.Errorf("%w: JWK without %q", ErrBadJWK, name)
		}
		b, err := jwkB64.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("%w: JWK %s: %v", ErrBadJWK, name, err)
		}
		out[i] = b
	}
	return out, nil
}

// PublicKey returns the public key j holds, ignoring any private members:
// an *ecdsa.PublicKey (x and y each the curve's full size, the point on
// the curve), an *rsa.PublicKey (e of 1 to 4 bytes) or an
// ed25519.PublicKey (x of 32 bytes). Errors wrap ErrBadJWK.
func (j JWK) PublicKey() (crypto.PublicKey, error) {
	switch j.Kty {
	case "EC":
		var curve elliptic.Curve
		for _, ci := range ecCurves {
			if ci.jwk == j.Crv {
				curve = ci.curve
			}
		}
		if curve == nil {
			return nil, fmt.Errorf("%w: unsupported EC curve %q", ErrBadJWK, j.Crv)
		}
		xy, err := j.decode("x", "y")
		if err != nil {
			return nil, err
		}
		pub, err := ecPublicKey(curve, xy[0], xy[1])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadJWK, err)
		}
		return pub, nil
	case "RSA":
		ne, err := j.decode("n", "e")
		if err != nil {
			return nil, err
		}
		n, e := ne[0], ne[1]
		if len(e) > 4 {
			return nil, fmt.Errorf("%w: RSA exponent of %d bytes", ErrBadJWK, len(e))
		}
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}, nil
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, fmt.Errorf("%w: unsupported OKP key (crv %q)", ErrBadJWK, j.Crv)
		}
		x, err := j.decode("x")
		if err != nil {
			return nil, err
		}
		if len(x[0]) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: Ed25519 x of %d bytes", ErrBadJWK, len(x[0]))
		}
		return ed25519.PublicKey(x[0]), nil
	}
	return nil, fmt.Errorf("%w: unsupported kty %q", ErrBadJWK, j.Kty)
}

// PrivateKey returns the private key j holds: an *ecdsa.PrivateKey, an
// *rsa.PrivateKey (validated from n, e, d, p and q; dp, dq and qi are
// recomputed) or an ed25519.PrivateKey (d the 32-byte seed). Errors wrap
// ErrBadJWK.
func (j JWK) PrivateKey() (crypto.Signer, error) {
	pub, err := j.PublicKey()
	if err != nil {
		return nil, err
	}
	dm, err := j.decode("d")
	if err != nil {
		return nil, err
	}
	d := dm[0]
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		return &ecdsa.PrivateKey{PublicKey: *pub, D: new(big.Int).SetBytes(d)}, nil
	case *rsa.PublicKey:
		pq, err := j.decode("p", "q")
		if err != nil {
			return nil, err
		}
		k := &rsa.PrivateKey{PublicKey: *pub, D: new(big.Int).SetBytes(d),
			Primes: []*big.Int{new(big.Int).SetBytes(pq[0]), new(big.Int).SetBytes(pq[1])}}
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadJWK, err)
		}
		k.Precompute()
		return k, nil
	case ed25519.PublicKey:
		if len(d) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: Ed25519 d of %d bytes, want %d", ErrBadJWK, len(d), ed25519.SeedSize)
		}
		return ed25519.NewKeyFromSeed(d), nil
	}
	return nil, fmt.Errorf("%w: unsupported kty %q", ErrBadJWK, j.Kty)
}
