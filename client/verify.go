package client

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/charterlog/charter/cose"
)

// VerifyOptions configures VerifyTransparentStatement.
type VerifyOptions struct {
	// ServiceKeys are the trusted receipt-signing keys. A receipt without a
	// kid verifies only when ServiceKeys holds exactly one key.
	ServiceKeys cose.KeySet
	// Payload, if non-nil, is checked against the statement (the "payload"
	// check). Nil skips that check.
	Payload []byte
	// StatementOptions configures the statement signature check. Offline
	// verification of old statements usually wants SkipChainTime.
	StatementOptions cose.VerifyOptions
}

// Check is one verification step and its outcome.
type Check struct {
	Name   string // "statement signature", "receipt 1", "payload", …
	OK     bool
	Detail string // what was verified, or why it failed
	// Receipt is what a receipt check verified (nil for other checks and
	// for failed ones). Its SizeBound says whether the tree size and leaf
	// index are signed by the service or only the sender's word.
	Receipt *cose.VerifiedReceipt
}

// Report lists the checks VerifyTransparentStatement made, in order.
type Report struct {
	Checks  []Check
	Issuer  string // the statement's CWT iss, once parsed
	Subject string // the statement's CWT sub, once parsed
}

// Failed returns the checks that did not hold.
func (r *Report) Failed() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// ErrNoReceipts is returned when a transparent statement carries no receipt.
var ErrNoReceipts = errors.New("client: no receipts (header 394)")

// VerifyTransparentStatement verifies ts offline: the statement signature,
// every receipt (at least one is required) against opts.ServiceKeys, and
// the payload if opts.Payload is set. The Report always lists what was
// checked; the error is non-nil iff a check failed, names each failed
// check, and wraps the underlying errors (cose.ErrReceiptSignature, …).
func VerifyTransparentStatement(ts []byte, opts VerifyOptions) (*Report, error) {
	rep := &Report{}
	var errs []error
	fail := func(name string, err error) {
		rep.Checks = append(rep.Checks, Check{Name: name, Detail: trimPkg(err)})
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	done := func() (*Report, error) { return rep, errors.Join(errs...) }

	statement, receipts, err := cose.SplitTransparentStatement(ts)
	if err != nil {
		fail("transparent statement", err)
		return done()
	}
	st, err := cose.ParseStatement(statement, cose.ParseOptions{MaxSize: len(statement)})
	if err != nil {
		fail("statement signature", err)
		return done()
	}
	rep.Issuer, rep.Subject = st.CWT.Issuer, st.CWT.Subject

	if iss, err := st.Verify(opts.StatementOptions); err != nil {
		fail("statement signature", err)
	} else {
		rep.Checks = append(rep.Checks, Check{Name: "statement signature", OK: true, Detail: "issuer " + iss.DID})
	}

	if len(receipts) == 0 {
		fail("receipts", ErrNoReceipts)
	}
	entry := st.LeafEntry()
	for i, r := range receipts {
		name := fmt.Sprintf("receipt %d", i+1)
		vr, err := cose.VerifyInclusion(r, entry[:], opts.ServiceKeys)
		if err != nil {
			fail(name, err)
			continue
		}
		rep.Checks = append(rep.Checks, Check{Name: name, OK: true, Detail: DescribeReceipt(vr), Receipt: vr})
	}

	if opts.Payload != nil {
		if err := st.VerifyPayload(opts.Payload); err != nil {
			fail("payload", err)
		} else {
			detail := fmt.Sprintf("%d bytes match the statement", len(opts.Payload))
			if st.HashEnvelope != nil {
				detail = fmt.Sprintf("%d bytes match the signed digest (hash envelope, COSE alg %d)", len(opts.Payload), int64(st.HashEnvelope.PayloadHashAlg))
			}
			rep.Checks = append(rep.Checks, Check{Name: "payload", OK: true, Detail: detail})
		}
	}
	return done()
}

// DescribeReceipt says what a verified receipt proves, for people:
// "kid …, issuer …, leaf index I of N" (vds 1) or, for CCF receipts,
// "kid …, issuer …, registered at V.S, signed at V.S (time)". When the
// receipt does not bind its tree size (vr.SizeBound false: other services'
// receipts, Charter's before the signed size), the index and size are
// followed by "(not signed by the service)": the entry is proven to be in
// the signed tree, but where is only what the sender wrote.
func DescribeReceipt(vr *cose.VerifiedReceipt) string {
	parts := []string{"kid " + string(vr.Kid)}
	if vr.Claims.Issuer != "" {
		parts = append(parts, "issuer "+vr.Claims.Issuer)
	}
	switch vr.VDS {
	case cose.VDSCCF:
		if vr.TxID != "" {
			parts = append(parts, "registered at "+vr.TxID)
		}
		if vr.SignedTxID != "" {
			parts = append(parts, "signed at "+vr.SignedTxID)
		}
	default:
		pos := fmt.Sprintf("leaf index %d of %d", vr.LeafIndex, vr.TreeSize)
		if !vr.SizeBound {
			pos += " " + NotSignedByService
		}
		parts = append(parts, pos)
	}
	s := strings.Join(parts, ", ")
	if vr.Claims.IssuedAt != 0 {
		s += " (" + time.Unix(vr.Claims.IssuedAt, 0).UTC().Format(time.RFC3339) + ")"
	}
	return s
}

// NotSignedByService marks, in DescribeReceipt, a tree size and leaf index
// that the receipt's signature does not cover.
const NotSignedByService = "(not signed by the service)"

// trimPkg drops the "cose: " prefix of error texts for report lines.
func trimPkg(err error) string {
	return strings.TrimPrefix(err.Error(), "cose: ")
}

// ParseServiceKeys reads trusted service keys in any of the formats services
// publish, detected by content:
//
//   - a COSE_KeySet (CBOR array of COSE_Key) or a single COSE_Key (CBOR map),
//     as served at /.well-known/scitt-keys;
//   - a JWK Set, JSON {"keys": […]}, as served at /jwks;
//   - a CCF SCITT trust store, JSON {"parameters": [{"serviceCertificate":
//     base64 DER, …}]} (pyscitt's static trust store): each certificate's
//     key, with kid = cose.KeyID. Certificate validity periods and the
//     "signatureAlgorithm" field are not used — the algorithm follows the
//     key's curve (that file says ES256 for P-384 keys);
//   - PEM: PUBLIC KEY blocks and CERTIFICATE blocks (the service
//     certificate), kid = cose.KeyID.
func ParseServiceKeys(b []byte) (cose.KeySet, error) {
	t := bytes.TrimSpace(b)
	if len(t) == 0 {
		return nil, errors.New("client: empty key file")
	}
	switch {
	case t[0] == '{':
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(t, &probe); err != nil {
			return nil, fmt.Errorf("client: key file is not valid JSON: %w", err)
		}
		switch {
		case probe["keys"] != nil:
			keys, err := cose.ParseJWKS(t)
			return cose.KeySet(keys), err
		case probe["parameters"] != nil:
			return parseCCFTrustStore(t)
		}
		return nil, errors.New(`client: JSON key file is neither a JWKS ("keys") nor a CCF trust store ("parameters")`)
	case bytes.HasPrefix(t, []byte("-----BEGIN")):
		return parsePEMKeys(t)
	case b[0]>>5 == 4: // CBOR array: COSE_KeySet
		keys, err := cose.ParseKeySet(b)
		return cose.KeySet(keys), err
	case b[0]>>5 == 5: // CBOR map: one COSE_Key
		k, err := cose.ParseCOSEKey(b)
		if err != nil {
			return nil, err
		}
		return cose.KeySet{k}, nil
	}
	return nil, errors.New("client: key file is not a COSE_KeySet, COSE_Key, JWKS, CCF trust store or PEM")
}

func parseCCFTrustStore(b []byte) (cose.KeySet, error) {
	var ts struct {
		Parameters []struct {
			ServiceCertificate string `json:"serviceCertificate"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal(b, &ts); err != nil {
		return nil, fmt.Errorf("client: CCF trust store: %w", err)
	}
	var certs [][]byte
	for i, p := range ts.Parameters {
		der, err := base64.StdEncoding.DecodeString(p.ServiceCertificate)
		if err != nil {
			return nil, fmt.Errorf("client: CCF trust store entry %d: %w", i, err)
		}
		certs = append(certs, der)
	}
	return keysFromCerts(certs)
}

func keysFromCerts(ders [][]byte) (cose.KeySet, error) {
	var keys cose.KeySet
	for i, der := range ders {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("client: certificate %d: %w", i, err)
		}
		k, err := keyFor(cert.PublicKey, keys)
		if err != nil {
			return nil, fmt.Errorf("client: certificate %d: %w", i, err)
		}
		if k != nil {
			keys = append(keys, *k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("client: no keys")
	}
	return keys, nil
}

// keyFor returns the Key of pub, or nil if keys already holds it.
func keyFor(pub any, keys cose.KeySet) (*cose.Key, error) {
	k, err := cose.NewKey(pub)
	if err != nil {
		return nil, err
	}
	if _, dup := keys.Lookup(k.Kid); dup {
		return nil, nil
	}
	return &k, nil
}

func parsePEMKeys(b []byte) (cose.KeySet, error) {
	var keys cose.KeySet
	var certs [][]byte
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		switch blk.Type {
		case "CERTIFICATE":
			certs = append(certs, blk.Bytes)
		case "PUBLIC KEY":
			pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
			if err != nil {
				return nil, fmt.Errorf("client: PEM public key: %w", err)
			}
			k, err := keyFor(pub, keys)
			if err != nil {
				return nil, err
			}
			if k != nil {
				keys = append(keys, *k)
			}
		default:
			return nil, fmt.Errorf("client: unexpected PEM block %q", blk.Type)
		}
	}
	if len(certs) > 0 {
		ck, err := keysFromCerts(certs)
		if err != nil {
			return nil, err
		}
		for _, k := range ck {
			if _, dup := keys.Lookup(k.Kid); !dup {
				keys = append(keys, k)
			}
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("client: no keys in PEM file")
	}
	return keys, nil
}
