package app

import (
	"crypto"
	"crypto/aes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"math/big"

	"github.com/charterlog/charter/cose"
	"github.com/grafana/sobek"
)

// ccf.crypto, after CCF's src/js/extensions/ccf/crypto.cpp and the
// signatures of @microsoft/ccf-app's global.d.ts. Randomness reaches apps
// only through the key generators here (crypto/rand); Math.random still
// throws. Keys are PEM: private keys PKCS#8 ("PRIVATE KEY"), public keys
// SubjectPublicKeyInfo ("PUBLIC KEY"), as OpenSSL writes them for CCF.

// cryptoObject returns ccf.crypto, built on first use (ccf.crypto and the
// deprecated aliases on ccf share it).
func (c *call) cryptoObject() *sobek.Object {
	if c.crypto == nil {
		c.crypto = c.rt.CreateObject(c.rt.NewDynamicObject(&lazyProps{names: cryptoNames, make: c.cryptoMember}))
	}
	return c.crypto
}

func (c *call) cryptoMember(name string) sobek.Value {
	f := c.cryptoFunc(name)
	if f == nil {
		return nil
	}
	o := c.fn(f).(*sobek.Object)
	nameFn(c.rt, o, name, 0)
	return o
}

var cryptoNames = []string{"digest", "sign", "verifySignature", "generateAesKey", "generateRsaKeyPair",
	"generateEcdsaKeyPair", "generateEddsaKeyPair", "wrapKey", "unwrapKey", "isValidX509CertBundle",
	"isValidX509CertChain", "pubPemToJwk", "pemToJwk", "pubRsaPemToJwk", "rsaPemToJwk", "pubEddsaPemToJwk",
	"eddsaPemToJwk", "pubJwkToPem", "jwkToPem", "pubRsaJwkToPem", "rsaJwkToPem", "pubEddsaJwkToPem", "eddsaJwkToPem"}

func (c *call) cryptoFunc(name string) func(sobek.FunctionCall) sobek.Value {
	switch name {
	case "digest":
		return c.digest
	case "sign":
		return c.sign
	case "verifySignature":
		return c.verifySignature
	case "generateAesKey":
		return c.generateAesKey
	case "generateRsaKeyPair":
		return c.generateRsaKeyPair
	case "generateEcdsaKeyPair":
		return c.generateEcdsaKeyPair
	case "generateEddsaKeyPair":
		return c.generateEddsaKeyPair
	case "wrapKey":
		return c.wrapKey
	case "unwrapKey":
		return c.unwrapKey
	case "isValidX509CertBundle":
		return c.isValidX509CertBundle
	case "isValidX509CertChain":
		return c.isValidX509CertChain
	case "pubPemToJwk":
		return c.jwkFromPEM(false, "EC")
	case "pemToJwk":
		return c.jwkFromPEM(true, "EC")
	case "pubRsaPemToJwk":
		return c.jwkFromPEM(false, "RSA")
	case "rsaPemToJwk":
		return c.jwkFromPEM(true, "RSA")
	case "pubEddsaPemToJwk":
		return c.jwkFromPEM(false, "OKP")
	case "eddsaPemToJwk":
		return c.jwkFromPEM(true, "OKP")
	case "pubJwkToPem":
		return c.pemFromJWK(false, "EC")
	case "jwkToPem":
		return c.pemFromJWK(true, "EC")
	case "pubRsaJwkToPem":
		return c.pemFromJWK(false, "RSA")
	case "rsaJwkToPem":
		return c.pemFromJWK(true, "RSA")
	case "pubEddsaJwkToPem":
		return c.pemFromJWK(false, "OKP")
	case "eddsaJwkToPem":
		return c.pemFromJWK(true, "OKP")
	}
	return nil
}

func (c *call) bufArg(fc sobek.FunctionCall, i int) []byte {
	b, ok := c.bytesOf(fc.Argument(i))
	if !ok {
		c.throwType("Argument %d must be an ArrayBuffer", i+1)
	}
	return b
}

func (c *call) strProp(v sobek.Value, name string) (string, bool) {
	o, ok := v.(*sobek.Object)
	if !ok {
		c.throwType("Argument must be an object")
	}
	p := o.Get(name)
	if p == nil || sobek.IsUndefined(p) || sobek.IsNull(p) {
		return "", false
	}
	return p.String(), true
}

func hashFor(name string) (crypto.Hash, func() hash.Hash, bool) {
	switch name {
	case "SHA-256":
		return crypto.SHA256, sha256.New, true
	case "SHA-384":
		return crypto.SHA384, sha512.New384, true
	case "SHA-512":
		return crypto.SHA512, sha512.New, true
	}
	return 0, nil, false
}

func (c *call) digest(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 2)
	_, h, ok := hashFor(fc.Argument(0).String())
	if !ok {
		c.throw(c.rangeCtor, "unsupported algorithm, supported: SHA-256, SHA-384, SHA-512")
	}
	d := h()
	d.Write(c.bufArg(fc, 1))
	return c.buffer(d.Sum(nil))
}

func (c *call) generateAesKey(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 1)
	bits := fc.Argument(0).ToInteger()
	if bits != 128 && bits != 192 && bits != 256 {
		c.throw(c.rangeCtor, "invalid key size (not one of 128, 192, 256)")
	}
	k := make([]byte, bits/8)
	rand.Read(k)
	return c.buffer(k)
}

func (c *call) keyPair(priv crypto.Signer) sobek.Value {
	p8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		c.throwError("Failed to generate key pair: %v", err)
	}
	spki, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		c.throwError("Failed to generate key pair: %v", err)
	}
	o := c.rt.NewObject()
	o.Set("privateKey", string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8})))
	o.Set("publicKey", string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})))
	return o
}

func (c *call) generateRsaKeyPair(fc sobek.FunctionCall) sobek.Value {
	if n := len(fc.Arguments); n != 1 && n != 2 {
		c.throwType("Passed %d arguments, but expected 1 or 2", n)
	}
	bits := fc.Argument(0).ToInteger()
	if bits < 2048 || bits > 4096 {
		c.throw(c.rangeCtor, "RSA key size must be from 2048 to 4096 bits")
	}
	if len(fc.Arguments) == 2 && fc.Argument(1).ToInteger() != 65537 {
		c.throw(c.rangeCtor, "only the public exponent 65537 is supported")
	}
	k, err := rsa.GenerateKey(rand.Reader, int(bits))
	if err != nil {
		c.throwError("Failed to generate RSA key pair: %v", err)
	}
	return c.keyPair(k)
}

func curveFor(name string) elliptic.Curve {
	switch name {
	case "secp256r1", "P-256":
		return elliptic.P256()
	case "secp384r1", "P-384":
		return elliptic.P384()
	case "secp521r1", "P-521":
		return elliptic.P521()
	}
	return nil
}

func (c *call) generateEcdsaKeyPair(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 1)
	curve := curveFor(fc.Argument(0).String())
	if curve == nil || fc.Argument(0).String()[0] == 'P' {
		c.throw(c.rangeCtor, "Unsupported curve id, supported: secp256r1, secp384r1")
	}
	k, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		c.throwError("Failed to generate ECDSA key pair: %v", err)
	}
	return c.keyPair(k)
}

func (c *call) generateEddsaKeyPair(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 1)
	if fc.Argument(0).String() != "curve25519" {
		c.throw(c.rangeCtor, "Unsupported curve id, supported: curve25519")
	}
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		c.throwError("Failed to generate EdDSA key pair: %v", err)
	}
	return c.keyPair(k)
}

// parsePrivate accepts PKCS#8, SEC 1 and PKCS#1 PEM.
func parsePrivate(s string) (crypto.Signer, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		return nil, errors.New("not PEM")
	}
	switch blk.Type {
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		return x509.ParsePKCS1PrivateKey(blk.Bytes)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	s2, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key %T", k)
	}
	return s2, nil
}

// parsePublic accepts a SubjectPublicKeyInfo, PKCS#1 RSA public key or
// certificate PEM.
func parsePublic(s string) (crypto.PublicKey, error) {
	blk, _ := pem.Decode([]byte(s))
	if blk == nil {
		return nil, errors.New("not PEM")
	}
	switch blk.Type {
	case "CERTIFICATE":
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		return cert.PublicKey, nil
	case "RSA PUBLIC KEY":
		return x509.ParsePKCS1PublicKey(blk.Bytes)
	}
	return x509.ParsePKIXPublicKey(blk.Bytes)
}

func (c *call) sign(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 3)
	alg, _ := c.strProp(fc.Argument(0), "name")
	keyPEM := fc.Argument(1).String()
	data := c.bufArg(fc, 2)
	if alg == "EdDSA" {
		k, err := parsePrivate(keyPEM)
		ek, ok := k.(ed25519.PrivateKey)
		if err != nil || !ok {
			c.throwError("Failed to sign with EdDSA pair: not an Ed25519 private key")
		}
		return c.buffer(ed25519.Sign(ek, data))
	}
	hname, _ := c.strProp(fc.Argument(0), "hash")
	h, newHash, ok := hashFor(hname)
	if !ok {
		c.throw(c.rangeCtor, "Unsupported hash algorithm, supported: SHA-256, SHA-384, SHA-512")
	}
	if alg == "HMAC" {
		m := hmac.New(newHash, []byte(keyPEM))
		m.Write(data)
		return c.buffer(m.Sum(nil))
	}
	d := newHash()
	d.Write(data)
	sum := d.Sum(nil)
	k, err := parsePrivate(keyPEM)
	if err != nil {
		c.throwError("Failed to sign: %v", err)
	}
	switch alg {
	case "ECDSA":
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			c.throwError("Failed to sign: not an EC private key")
		}
		r, s, err := ecdsa.Sign(rand.Reader, ek, sum)
		if err != nil {
			c.throwError("Failed to sign: %v", err)
		}
		n := (ek.Curve.Params().BitSize + 7) / 8
		sig := make([]byte, 2*n) // IEEE P1363: r ‖ s, as CCF returns
		r.FillBytes(sig[:n])
		s.FillBytes(sig[n:])
		return c.buffer(sig)
	case "RSA-PSS":
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			c.throwError("Failed to sign: not an RSA private key")
		}
		salt := int(c.intProp(fc.Argument(0), "saltLength"))
		if salt <= 0 {
			c.throw(c.rangeCtor, "RSA-PSS saltLength must be positive")
		}
		sig, err := rsa.SignPSS(rand.Reader, rk, h, sum, &rsa.PSSOptions{SaltLength: salt})
		if err != nil {
			c.throwError("Failed to sign: %v", err)
		}
		return c.buffer(sig)
	}
	c.throw(c.rangeCtor, "Unsupported signing algorithm, supported: RSA-PSS, ECDSA, EdDSA, HMAC")
	return nil
}

func (c *call) intProp(v sobek.Value, name string) int64 {
	o, ok := v.(*sobek.Object)
	if !ok {
		return 0
	}
	p := o.Get(name)
	if p == nil {
		return 0
	}
	return p.ToInteger()
}

func (c *call) verifySignature(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 4)
	sig := c.bufArg(fc, 2)
	data := c.bufArg(fc, 3)
	alg, _ := c.strProp(fc.Argument(0), "name")
	pub, err := parsePublic(fc.Argument(1).String())
	if alg == "EdDSA" {
		ek, ok := pub.(ed25519.PublicKey)
		if err != nil || !ok {
			c.throw(c.rangeCtor, "Failed to verify EdDSA signature: not an Ed25519 public key")
		}
		return c.rt.ToValue(ed25519.Verify(ek, data, sig))
	}
	hname, _ := c.strProp(fc.Argument(0), "hash")
	if hname != "SHA-256" {
		c.throw(c.rangeCtor, "Unsupported hash algorithm, supported: SHA-256")
	}
	if alg != "RSA-PSS" && alg != "ECDSA" {
		c.throw(c.rangeCtor, "Unsupported signing algorithm, supported: RSA-PSS, ECDSA, EdDSA")
	}
	if err != nil {
		c.throwError("Failed to verify signature: %v", err)
	}
	sum := sha256.Sum256(data)
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if alg != "ECDSA" {
			break
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n {
			return c.rt.ToValue(false)
		}
		r, s := new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])
		return c.rt.ToValue(ecdsa.Verify(k, sum[:], r, s))
	case *rsa.PublicKey:
		if alg != "RSA-PSS" {
			break
		}
		salt := int(c.intProp(fc.Argument(0), "saltLength"))
		if salt <= 0 {
			salt = rsa.PSSSaltLengthAuto
		}
		return c.rt.ToValue(rsa.VerifyPSS(k, crypto.SHA256, sum[:], sig, &rsa.PSSOptions{SaltLength: salt}) == nil)
	}
	c.throwError("Failed to verify signature: key does not match algorithm %s", alg)
	return nil
}

func (c *call) isValidX509CertBundle(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 1)
	_, err := parseCerts(fc.Argument(0).String())
	return c.rt.ToValue(err == nil)
}

func (c *call) isValidX509CertChain(fc sobek.FunctionCall) sobek.Value {
	c.argc(fc, 2)
	chain, err := parseCerts(fc.Argument(0).String())
	if err != nil {
		return c.rt.ToValue(false)
	}
	trusted, err := parseCerts(fc.Argument(1).String())
	if err != nil {
		return c.rt.ToValue(false)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, t := range trusted {
		roots.AddCert(t)
	}
	for _, i := range chain[1:] {
		inter.AddCert(i)
	}
	// No clock in the sandbox: validity periods are not checked (the
	// verification time is the leaf's own NotBefore).
	_, err = chain[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		CurrentTime: chain[0].NotBefore, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return c.rt.ToValue(err == nil)
}

func parseCerts(s string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := []byte(s)
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, errors.New("not a certificate")
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, err
		}
		out = append(out, cert)
	}
	if len(out) == 0 {
		return nil, errors.New("no certificate")
	}
	return out, nil
}

// ---- key wrapping

func (c *call) wrapKey(fc sobek.FunctionCall) sobek.Value   { return c.wrapOrUnwrap(fc, true) }
func (c *call) unwrapKey(fc sobek.FunctionCall) sobek.Value { return c.wrapOrUnwrap(fc, false) }

func (c *call) wrapOrUnwrap(fc sobek.FunctionCall, wrap bool) sobek.Value {
	c.argc(fc, 3)
	key := append([]byte(nil), c.bufArg(fc, 0)...)
	wk := append([]byte(nil), c.bufArg(fc, 1)...)
	alg, _ := c.strProp(fc.Argument(2), "name")
	var label []byte
	if o, ok := fc.Argument(2).(*sobek.Object); ok {
		if l := o.Get("label"); l != nil {
			label, _ = c.bytesOf(l)
		}
	}
	verb := "unwrap"
	if wrap {
		verb = "wrap"
	}
	var out []byte
	var err error
	switch alg {
	case "AES-KWP":
		if wrap {
			out, err = aesKWPWrap(wk, key)
		} else {
			out, err = aesKWPUnwrap(wk, key)
		}
	case "RSA-OAEP":
		if wrap {
			out, err = rsaOAEPWrap(string(wk), key, label)
		} else {
			out, err = rsaOAEPUnwrap(string(wk), key, label)
		}
	case "RSA-OAEP-AES-KWP":
		if wrap {
			out, err = rsaAESWrap(int(c.intProp(fc.Argument(2), "aesKeySize")), string(wk), key, label)
		} else {
			out, err = rsaAESUnwrap(string(wk), key, label)
		}
	default:
		c.throw(c.rangeCtor, "unsupported key %sping algorithm, supported: RSA-OAEP, AES-KWP, RSA-OAEP-AES-KWP", verb)
	}
	if err != nil {
		c.throwError("Failed to %s key: %v", verb, err)
	}
	return c.buffer(out)
}

// RSA-OAEP uses SHA-256 for the hash and MGF1, as CCF's
// ckm_rsa_pkcs_oaep_wrap does.
func rsaOAEPWrap(pemKey string, key, label []byte) ([]byte, error) {
	pub, err := parsePublic(pemKey)
	if err != nil {
		return nil, err
	}
	rk, ok := pub.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("wrapping key is not an RSA public key")
	}
	return rsa.EncryptOAEP(sha256.New(), rand.Reader, rk, key, label)
}

func rsaOAEPUnwrap(pemKey string, wrapped, label []byte) ([]byte, error) {
	k, err := parsePrivate(pemKey)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("unwrapping key is not an RSA private key")
	}
	return rsa.DecryptOAEP(sha256.New(), nil, rk, wrapped, label)
}

// rsaAESWrap is PKCS#11 CKM_RSA_AES_KEY_WRAP: a fresh AES key wrapped with
// RSA-OAEP, followed by the key wrapped with AES-KWP under it.
func rsaAESWrap(aesBits int, pemKey string, key, label []byte) ([]byte, error) {
	if aesBits != 128 && aesBits != 192 && aesBits != 256 {
		return nil, errors.New("aesKeySize must be 128, 192 or 256")
	}
	tmp := make([]byte, aesBits/8)
	rand.Read(tmp)
	w1, err := rsaOAEPWrap(pemKey, tmp, label)
	if err != nil {
		return nil, err
	}
	w2, err := aesKWPWrap(tmp, key)
	if err != nil {
		return nil, err
	}
	return append(w1, w2...), nil
}

func rsaAESUnwrap(pemKey string, wrapped, label []byte) ([]byte, error) {
	k, err := parsePrivate(pemKey)
	if err != nil {
		return nil, err
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("unwrapping key is not an RSA private key")
	}
	n := rk.Size()
	if len(wrapped) <= n {
		return nil, errors.New("wrapped key too short")
	}
	tmp, err := rsa.DecryptOAEP(sha256.New(), nil, rk, wrapped[:n], label)
	if err != nil {
		return nil, err
	}
	return aesKWPUnwrap(tmp, wrapped[n:])
}

// aesKWPWrap is AES Key Wrap with Padding, RFC 5649.
func aesKWPWrap(kek, key []byte) ([]byte, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(key) == 0 {
		return nil, errors.New("empty key")
	}
	// RFC 5649 §3: AIV = A65959A6 ‖ 32-bit MLI.
	var aiv [8]byte
	binary.BigEndian.PutUint32(aiv[:4], 0xA65959A6)
	binary.BigEndian.PutUint32(aiv[4:], uint32(len(key)))
	p := make([]byte, (len(key)+7)/8*8)
	copy(p, key)
	if len(p) == 8 {
		// §4.1: one block: C = ENC(K, AIV ‖ P).
		out := make([]byte, 16)
		copy(out, aiv[:])
		copy(out[8:], p)
		b.Encrypt(out, out)
		return out, nil
	}
	n := len(p) / 8
	a := aiv
	r := make([]byte, len(p))
	copy(r, p)
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 0; i < n; i++ {
			copy(buf[:8], a[:])
			copy(buf[8:], r[i*8:i*8+8])
			b.Encrypt(buf[:], buf[:])
			t := uint64(n*j + i + 1)
			binary.BigEndian.PutUint64(a[:], binary.BigEndian.Uint64(buf[:8])^t)
			copy(r[i*8:], buf[8:])
		}
	}
	return append(a[:], r...), nil
}

func aesKWPUnwrap(kek, c []byte) ([]byte, error) {
	b, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	if len(c) < 16 || len(c)%8 != 0 {
		return nil, errors.New("wrapped key has a bad length")
	}
	var a [8]byte
	var p []byte
	if len(c) == 16 {
		var buf [16]byte
		b.Decrypt(buf[:], c)
		copy(a[:], buf[:8])
		p = append([]byte(nil), buf[8:]...)
	} else {
		n := len(c)/8 - 1
		copy(a[:], c[:8])
		r := append([]byte(nil), c[8:]...)
		var buf [16]byte
		for j := 5; j >= 0; j-- {
			for i := n - 1; i >= 0; i-- {
				t := uint64(n*j + i + 1)
				binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(a[:])^t)
				copy(buf[8:], r[i*8:i*8+8])
				b.Decrypt(buf[:], buf[:])
				copy(a[:], buf[:8])
				copy(r[i*8:], buf[8:])
			}
		}
		p = r
	}
	if binary.BigEndian.Uint32(a[:4]) != 0xA65959A6 {
		return nil, errors.New("integrity check failed")
	}
	mli := int(binary.BigEndian.Uint32(a[4:]))
	if mli > len(p) || mli <= len(p)-8 {
		return nil, errors.New("integrity check failed")
	}
	for _, x := range p[mli:] {
		if x != 0 {
			return nil, errors.New("integrity check failed")
		}
	}
	return p[:mli], nil
}

// ---- JWK conversion, through cose's JWK codec

func (c *call) jwkFromPEM(private bool, kty string) func(sobek.FunctionCall) sobek.Value {
	return func(fc sobek.FunctionCall) sobek.Value {
		if n := len(fc.Arguments); n != 1 && n != 2 {
			c.throwType("Passed %d arguments, but expected 1 or 2", n)
		}
		s := fc.Argument(0).String()
		var key any
		var err error
		if private {
			key, err = parsePrivate(s)
		} else {
			key, err = parsePublic(s)
		}
		if err != nil {
			c.throwError("Failed to parse PEM: %v", err)
		}
		var got string
		switch key.(type) {
		case *ecdsa.PrivateKey, *ecdsa.PublicKey:
			got = "EC"
		case *rsa.PrivateKey, *rsa.PublicKey:
			got = "RSA"
		case ed25519.PrivateKey, ed25519.PublicKey:
			got = "OKP"
		}
		if got != kty {
			c.throwError("Failed to parse PEM: not a %s key", kty)
		}
		jwk, err := cose.JWKFromKey(key)
		if err != nil {
			c.throwError("Failed to parse PEM: %v", err)
		}
		if len(fc.Arguments) == 2 && !sobek.IsUndefined(fc.Argument(1)) {
			jwk.Kid = fc.Argument(1).String()
		}
		j := jwk.Members()
		o := c.rt.NewObject()
		for _, k := range sortedKeys(j) {
			o.Set(k, j[k])
		}
		return o
	}
}

func (c *call) pemFromJWK(private bool, kty string) func(sobek.FunctionCall) sobek.Value {
	return func(fc sobek.FunctionCall) sobek.Value {
		c.argc(fc, 1)
		var j cose.JWK
		for name, m := range map[string]*string{"kty": &j.Kty, "crv": &j.Crv, "x": &j.X, "y": &j.Y,
			"n": &j.N, "e": &j.E, "d": &j.D, "p": &j.P, "q": &j.Q} {
			*m, _ = c.strProp(fc.Argument(0), name)
		}
		if j.Kty != kty {
			c.throwError("Failed to convert jwk to pem: kty is %q, want %q", j.Kty, kty)
		}
		if curve := curveFor(j.Crv); kty == "EC" && curve != nil {
			// The curve's JWK name, also for the OpenSSL names
			// (secp256r1…) CCF's apps may use.
			j.Crv = curve.Params().Name
		}
		var key any
		var err error
		if private {
			key, err = j.PrivateKey()
		} else {
			key, err = j.PublicKey()
		}
		if err != nil {
			c.throwError("Failed to convert jwk to pem: %v", err)
		}
		var der []byte
		typ := "PUBLIC KEY"
		if private {
			typ = "PRIVATE KEY"
			der, err = x509.MarshalPKCS8PrivateKey(key)
		} else {
			der, err = x509.MarshalPKIXPublicKey(key)
		}
		if err != nil {
			c.throwError("Failed to convert jwk to pem: %v", err)
		}
		return c.rt.ToValue(string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
	}
}
