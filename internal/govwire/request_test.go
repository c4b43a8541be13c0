package govwire_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/govwire"
	"github.com/fxamacker/cbor/v2"
	gocose "github.com/veraison/go-cose"
)

// t0 is the fixed "now" of these tests; no test reads the wall clock.
var t0 = time.Unix(1750000000, 0)

const testProposalID = "1f6e0e2c4a5b0c9d8e7f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5"

var allTypes = []govwire.MsgType{govwire.MsgProposal, govwire.MsgBallot, govwire.MsgWithdrawal, govwire.MsgAck, govwire.MsgStateDigest, govwire.MsgRecoveryShare}

// payloadFor returns a typical payload of each message type.
func payloadFor(t govwire.MsgType) []byte {
	switch t {
	case govwire.MsgProposal:
		return []byte(`{"actions":[{"name":"set_constitution","args":{"constitution":"export function validate() {}"}}]}`)
	case govwire.MsgBallot:
		return []byte(`{"ballot":"export function vote (proposal, proposerId) { return true }"}`)
	case govwire.MsgAck:
		return []byte(`{"state_digest":"` + strings.Repeat("ab", 32) + `"}`)
	case govwire.MsgStateDigest:
		return []byte(`{}`)
	case govwire.MsgRecoveryShare:
		return []byte(`{"share":"c2hhcmU="}`)
	}
	return []byte{} // withdrawal: CCF sends an empty body
}

func pidFor(t govwire.MsgType) string {
	if t == govwire.MsgBallot || t == govwire.MsgWithdrawal {
		return testProposalID
	}
	return ""
}

func mustSign(t testing.TB, m member, typ govwire.MsgType, at time.Time, payload []byte) []byte {
	t.Helper()
	b, err := govwire.SignRequest(rand.Reader, m.signer, m.cert, typ, at, pidFor(typ), payload)
	if err != nil {
		t.Fatalf("SignRequest(%s, %s): %v", m.name, typ, err)
	}
	return b
}

func wantAlg(kind string) gocose.Algorithm {
	return map[string]gocose.Algorithm{
		"p256": gocose.AlgorithmES256, "p384": gocose.AlgorithmES384, "p521": gocose.AlgorithmES512,
		"ed25519": gocose.AlgorithmEdDSA, "rsa2048": gocose.AlgorithmPS256,
	}[kind]
}

func TestRoundTrip(t *testing.T) {
	kinds := []string{"p256", "p384", "ed25519"}
	if !testing.Short() {
		kinds = append(kinds, "p521", "rsa2048")
	}
	for _, kind := range kinds {
		m := newMember(t, kind)
		for _, typ := range allTypes {
			t.Run(kind+"/"+string(typ), func(t *testing.T) {
				payload := payloadFor(typ)
				raw := mustSign(t, m, typ, t0, payload)
				r, err := govwire.ParseRequest(raw)
				if err != nil {
					t.Fatalf("ParseRequest: %v", err)
				}
				if !bytes.Equal(r.Raw, raw) || r.Alg != wantAlg(kind) || r.MemberID != govwire.MemberIDOf(m.cert) ||
					r.Type != typ || r.CreatedAt != t0.Unix() || r.ProposalID != pidFor(typ) ||
					!bytes.Equal(r.Payload, payload) || len(r.Signature) == 0 {
					t.Errorf("parsed %+v", r)
				}
				if err := r.Verify(m.cert); err != nil {
					t.Errorf("Verify: %v", err)
				}
				if err := r.CheckFresh(t0, time.Minute); err != nil {
					t.Errorf("CheckFresh: %v", err)
				}
				if r.Digest() != sha256.Sum256(raw) {
					t.Error("Digest is not SHA-256 of the request")
				}
				checkAccessors(t, r)
			})
		}
	}
}

// checkAccessors checks that exactly the accessor of r's type succeeds and
// the others say ErrWrongType.
func checkAccessors(t *testing.T, r *govwire.Request) {
	t.Helper()
	_, perr := r.Proposal()
	_, berr := r.Ballot()
	_, aerr := r.Ack()
	for typ, err := range map[govwire.MsgType]error{govwire.MsgProposal: perr, govwire.MsgBallot: berr, govwire.MsgAck: aerr} {
		switch {
		case typ == r.Type && err != nil:
			t.Errorf("%s(): %v", typ, err)
		case typ != r.Type && !errors.Is(err, govwire.ErrWrongType):
			t.Errorf("%s() on a %s = %v, want ErrWrongType", typ, r.Type, err)
		}
	}
}

func TestProposalContent(t *testing.T) {
	m := newMember(t, "ed25519")
	r, err := govwire.ParseRequest(mustSign(t, m, govwire.MsgProposal, t0, payloadFor(govwire.MsgProposal)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Proposal()
	if err != nil {
		t.Fatal(err)
	}
	want := &govwire.Proposal{Actions: []govwire.Action{{Name: "set_constitution", Args: []byte(`{"constitution":"export function validate() {}"}`)}}}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("Proposal() = %+v, want %+v", p, want)
	}
}

// TestVerifyWrongMember: a request checked against another member's
// certificate fails with ErrUnknownMember, because its kid names the
// signer, not the certificate's owner.
func TestVerifyWrongMember(t *testing.T) {
	a, b := newMember(t, "p256"), newMember(t, "p256")
	r, err := govwire.ParseRequest(mustSign(t, a, govwire.MsgBallot, t0, payloadFor(govwire.MsgBallot)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(b.cert); !errors.Is(err, govwire.ErrUnknownMember) {
		t.Errorf("Verify(other member) = %v, want ErrUnknownMember", err)
	}
	if err := r.Verify(nil); !errors.Is(err, govwire.ErrUnknownMember) {
		t.Errorf("Verify(nil) = %v, want ErrUnknownMember", err)
	}
}

// TestVerifyForgedKid: member a signs a request that claims to come from
// member b. The kid matches b's certificate, the signature does not.
func TestVerifyForgedKid(t *testing.T) {
	a, b := newMember(t, "p256"), newMember(t, "p256")
	prot := encodeMap(t, ballotHeader(b, gocose.AlgorithmES256)...)
	r, err := govwire.ParseRequest(signRaw(t, a.signer, gocose.AlgorithmES256, prot, payloadFor(govwire.MsgBallot)))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(b.cert); !errors.Is(err, govwire.ErrBadSignature) {
		t.Errorf("Verify = %v, want ErrBadSignature", err)
	}
}

func TestVerifyFlippedSignatureByte(t *testing.T) {
	for _, kind := range []string{"p256", "p384", "ed25519"} {
		m := newMember(t, kind)
		raw := mustSign(t, m, govwire.MsgBallot, t0, payloadFor(govwire.MsgBallot))
		for _, i := range []int{len(raw) - 1, len(raw) - len(mustParse(t, raw).Signature)} {
			bad := bytes.Clone(raw)
			bad[i] ^= 0x01
			r, err := govwire.ParseRequest(bad)
			if err != nil {
				t.Fatalf("%s: a flipped signature byte should still parse: %v", kind, err)
			}
			if err := r.Verify(m.cert); !errors.Is(err, govwire.ErrBadSignature) {
				t.Errorf("%s: byte %d flipped: Verify = %v, want ErrBadSignature", kind, i, err)
			}
		}
	}
}

// TestVerifyAlgMustFitKey: a signature made with the member's key, but
// under an alg that does not belong to that key, is refused.
func TestVerifyAlgMustFitKey(t *testing.T) {
	t.Run("ES256 with a P-384 key", func(t *testing.T) {
		m := newMember(t, "p384")
		prot := encodeMap(t, ballotHeader(m, gocose.AlgorithmES256)...)
		payload := payloadFor(govwire.MsgBallot)
		k := m.signer.(*ecdsa.PrivateKey)
		d := sha256.Sum256(sigStructure(t, prot, payload))
		rr, ss, err := ecdsa.Sign(rand.Reader, k, d[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := append(rr.FillBytes(make([]byte, 48)), ss.FillBytes(make([]byte, 48))...)
		checkVerifyFails(t, envelope(t, prot, payload, sig), m, "needs curve P-256")
	})
	t.Run("PS256 with a 1024-bit RSA key", func(t *testing.T) {
		m := newMember(t, "rsa1024")
		prot := encodeMap(t, ballotHeader(m, gocose.AlgorithmPS256)...)
		payload := payloadFor(govwire.MsgBallot)
		d := sha256.Sum256(sigStructure(t, prot, payload))
		sig, err := rsa.SignPSS(rand.Reader, m.signer.(*rsa.PrivateKey), crypto.SHA256, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		if err != nil {
			t.Fatal(err)
		}
		checkVerifyFails(t, envelope(t, prot, payload, sig), m, "at least 2048 bits")
	})
	t.Run("ES512 with a P-521 key is fine", func(t *testing.T) {
		m := newMember(t, "p521")
		prot := encodeMap(t, ballotHeader(m, gocose.AlgorithmES512)...)
		payload := payloadFor(govwire.MsgBallot)
		d := sha512.Sum512(sigStructure(t, prot, payload))
		rr, ss, err := ecdsa.Sign(rand.Reader, m.signer.(*ecdsa.PrivateKey), d[:])
		if err != nil {
			t.Fatal(err)
		}
		sig := append(rr.FillBytes(make([]byte, 66)), ss.FillBytes(make([]byte, 66))...)
		if err := mustParse(t, envelope(t, prot, payload, sig)).Verify(m.cert); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})
}

func checkVerifyFails(t *testing.T, raw []byte, m member, detail string) {
	t.Helper()
	err := mustParse(t, raw).Verify(m.cert)
	if !errors.Is(err, govwire.ErrBadSignature) || !strings.Contains(err.Error(), detail) {
		t.Errorf("Verify = %v, want ErrBadSignature with %q", err, detail)
	}
}

func mustParse(t testing.TB, raw []byte) *govwire.Request {
	t.Helper()
	r, err := govwire.ParseRequest(raw)
	if err != nil {
		t.Fatalf("ParseRequest: %v", err)
	}
	return r
}

// TestMangledRequestsFail changes every byte of a valid request to every
// other value (Ed25519) or flips each of its bits (P-256), and truncates it
// at every length. Each result must fail ParseRequest with ErrMalformed or
// Verify with ErrBadSignature or ErrUnknownMember, and nothing may panic.
func TestMangledRequestsFail(t *testing.T) {
	for _, kind := range []string{"ed25519", "p256"} {
		t.Run(kind, func(t *testing.T) {
			m := newMember(t, kind)
			raw := mustSign(t, m, govwire.MsgBallot, t0, []byte(`{"ballot":"export function vote(){return true}"}`))
			check := func(what string, b []byte) {
				r, err := govwire.ParseRequest(b)
				if err != nil {
					if !errors.Is(err, govwire.ErrMalformed) {
						t.Fatalf("%s: ParseRequest = %v, want ErrMalformed", what, err)
					}
					return
				}
				err = r.Verify(m.cert)
				if err == nil {
					t.Fatalf("%s: mangled request verifies", what)
				}
				if !errors.Is(err, govwire.ErrBadSignature) && !errors.Is(err, govwire.ErrUnknownMember) {
					t.Fatalf("%s: Verify = %v", what, err)
				}
			}
			b := bytes.Clone(raw)
			for i := range raw {
				for v := 0; v < 256; v++ {
					if byte(v) == raw[i] || (kind != "ed25519" && bitsSet(byte(v)^raw[i]) != 1) {
						continue
					}
					b[i] = byte(v)
					check(fmt.Sprintf("byte %d = 0x%02x", i, v), b)
				}
				b[i] = raw[i]
			}
			for n := 0; n < len(raw); n++ {
				check(fmt.Sprintf("truncated to %d", n), raw[:n])
			}
			check("one byte appended", append(bytes.Clone(raw), 0))
		})
	}
}

func bitsSet(x byte) int {
	n := 0
	for ; x != 0; x &= x - 1 {
		n++
	}
	return n
}

// kv is one header entry; v may be a cbor.RawMessage for hand-made values.
type kv struct {
	k, v any
}

func ballotHeader(m member, alg gocose.Algorithm) []kv {
	return []kv{
		{int64(1), int64(alg)},
		{int64(4), []byte(govwire.MemberIDOf(m.cert))},
		{"ccf.gov.msg.type", "ballot"},
		{"ccf.gov.msg.created_at", uint64(t0.Unix())},
		{"ccf.gov.msg.proposal_id", testProposalID},
	}
}

func set(h []kv, k, v any) []kv {
	out := append([]kv(nil), h...)
	for i := range out {
		if out[i].k == k {
			out[i].v = v
			return out
		}
	}
	return append(out, kv{k, v})
}

func del(h []kv, k any) []kv {
	var out []kv
	for _, e := range h {
		if e.k != k {
			out = append(out, e)
		}
	}
	return out
}

// encodeMap encodes a header map entry by entry in the given order,
// duplicates included, which no map-based encoder would produce.
func encodeMap(t testing.TB, h ...kv) []byte {
	t.Helper()
	if len(h) >= 24 {
		t.Fatal("encodeMap: too many entries")
	}
	out := []byte{0xa0 | byte(len(h))}
	for _, e := range h {
		for _, x := range []any{e.k, e.v} {
			b, err := cbor.Marshal(x)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b...)
		}
	}
	return out
}

func sigStructure(t testing.TB, prot, payload []byte) []byte {
	t.Helper()
	b, err := cbor.Marshal([]any{"Signature1", prot, []byte{}, payload})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signRaw signs protected and payload with go-cose's signer and wraps them
// in a tagged COSE_Sign1 with an empty unprotected map.
func signRaw(t testing.TB, s crypto.Signer, alg gocose.Algorithm, prot, payload []byte) []byte {
	t.Helper()
	signer, err := gocose.NewSigner(alg, s)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.Sign(rand.Reader, sigStructure(t, prot, payload))
	if err != nil {
		t.Fatal(err)
	}
	return envelope(t, prot, payload, sig)
}

func envelope(t testing.TB, prot, payload, sig []byte) []byte {
	t.Helper()
	b, err := cbor.Marshal(cbor.Tag{Number: 18, Content: []any{prot, map[any]any{}, payload, sig}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseRequestMalformedHeaders(t *testing.T) {
	m := newMember(t, "p256")
	id := govwire.MemberIDOf(m.cert)
	good := ballotHeader(m, gocose.AlgorithmES256)
	proposal := set(del(good, "ccf.gov.msg.proposal_id"), "ccf.gov.msg.type", "proposal")
	cases := []struct {
		name   string
		hdr    []kv
		raw    []byte // protected bytes, instead of hdr
		detail string
	}{
		{name: "missing alg", hdr: del(good, int64(1)), detail: "missing alg (1)"},
		{name: "missing kid", hdr: del(good, int64(4)), detail: "missing kid (4)"},
		{name: "missing type", hdr: del(good, "ccf.gov.msg.type"), detail: "missing ccf.gov.msg.type"},
		{name: "missing created_at", hdr: del(good, "ccf.gov.msg.created_at"), detail: "missing ccf.gov.msg.created_at"},
		{name: "ballot without proposal_id", hdr: del(good, "ccf.gov.msg.proposal_id"), detail: "missing ccf.gov.msg.proposal_id, required on ballot"},
		{name: "withdrawal without proposal_id", hdr: set(del(good, "ccf.gov.msg.proposal_id"), "ccf.gov.msg.type", "withdrawal"), detail: "missing ccf.gov.msg.proposal_id, required on withdrawal"},
		{name: "proposal with proposal_id", hdr: set(good, "ccf.gov.msg.type", "proposal"), detail: "ccf.gov.msg.proposal_id is not allowed on proposal"},
		{name: "ack with proposal_id", hdr: set(good, "ccf.gov.msg.type", "ack"), detail: "ccf.gov.msg.proposal_id is not allowed on ack"},
		{name: "extra x5chain (33)", hdr: set(good, int64(33), []byte{1}), detail: "unexpected label 33"},
		{name: "extra crit (2)", hdr: set(good, int64(2), []any{int64(1)}), detail: "unexpected label 2"},
		{name: "extra text label", hdr: set(good, "ccf.gov.msg.extra", "x"), detail: `unexpected label "ccf.gov.msg.extra"`},
		{name: "label is a byte string", hdr: set(good, []byte("alg"), int64(-7)), detail: "label of type"},
		{name: "duplicate alg", hdr: append(good, kv{int64(1), int64(-7)}), detail: "duplicate map key"},
		{name: "duplicate type", hdr: append(good, kv{"ccf.gov.msg.type", "ballot"}), detail: "duplicate map key"},
		{name: "alg as text", hdr: set(good, int64(1), "ES256"), detail: "alg (1): not an integer"},
		{name: "alg RS256 not allowed", hdr: set(good, int64(1), int64(-257)), detail: "alg (1) -257 is not"},
		{name: "kid as int", hdr: set(good, int64(4), int64(7)), detail: "kid (4): neither a byte string nor a text string"},
		{name: "kid too short", hdr: set(good, int64(4), []byte(id[:63])), detail: "kid (4): 63 characters"},
		{name: "kid raw digest, not hex", hdr: set(good, int64(4), bytes.Repeat([]byte{0xab}, 32)), detail: "kid (4): 32 characters"},
		{name: "kid uppercase", hdr: set(good, int64(4), []byte(strings.ToUpper(id))), detail: "not a lowercase hex digit"},
		{name: "type as bstr", hdr: set(good, "ccf.gov.msg.type", []byte("ballot")), detail: "ccf.gov.msg.type: not a text string"},
		{name: "type unknown", hdr: set(good, "ccf.gov.msg.type", "encrypted_recovery_share"), detail: "not a known message type"},
		{name: "created_at negative", hdr: set(good, "ccf.gov.msg.created_at", int64(-1)), detail: "created_at: not an unsigned integer"},
		{name: "created_at text", hdr: set(good, "ccf.gov.msg.created_at", "1750000000"), detail: "created_at: not an unsigned integer"},
		{name: "created_at float", hdr: set(good, "ccf.gov.msg.created_at", 1.75e9), detail: "created_at: not an unsigned integer"},
		{name: "created_at tagged epoch", hdr: set(good, "ccf.gov.msg.created_at", cbor.Tag{Number: 1, Content: uint64(1750000000)}), detail: "created_at: not an unsigned integer"},
		{name: "created_at beyond int64", hdr: set(good, "ccf.gov.msg.created_at", uint64(math.MaxInt64)+1), detail: "overflows int64"},
		{name: "proposal_id as bstr", hdr: set(good, "ccf.gov.msg.proposal_id", []byte(testProposalID)), detail: "proposal_id: not a text string"},
		{name: "proposal_id empty", hdr: set(good, "ccf.gov.msg.proposal_id", ""), detail: "proposal_id: length 0"},
		{name: "proposal_id too long", hdr: set(good, "ccf.gov.msg.proposal_id", strings.Repeat("a", 129)), detail: "proposal_id: length 129"},
		{name: "proposal_id path", hdr: set(good, "ccf.gov.msg.proposal_id", "../x"), detail: "byte 0x2f at 2"},
		{name: "content type as bstr", hdr: set(proposal, int64(3), []byte("application/json")), detail: "content type (3) is neither"},
		{name: "protected header is an array", raw: []byte{0x80}, detail: "protected header: cbor"},
		{name: "protected header is empty", raw: []byte{}, detail: "missing alg (1)"},
		{name: "protected header with trailing byte", raw: append(encodeMap(t, good...), 0x00), detail: "protected header: cbor"},
		{name: "protected header indefinite map", raw: append(append([]byte{0xbf}, encodeMap(t, good...)[1:]...), 0xff), detail: "protected header: cbor"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prot := c.raw
			if prot == nil {
				prot = encodeMap(t, c.hdr...)
			}
			raw := signRaw(t, m.signer, gocose.AlgorithmES256, prot, payloadFor(govwire.MsgBallot))
			_, err := govwire.ParseRequest(raw)
			if !errors.Is(err, govwire.ErrMalformed) || !strings.Contains(err.Error(), c.detail) {
				t.Errorf("ParseRequest = %v, want ErrMalformed with %q", err, c.detail)
			}
		})
	}
}

// TestParseRequestTolerated lists headers that other clients send and that
// must parse and verify.
func TestParseRequestTolerated(t *testing.T) {
	m := newMember(t, "p256")
	id := govwire.MemberIDOf(m.cert)
	good := ballotHeader(m, gocose.AlgorithmES256)
	cases := []struct {
		name string
		hdr  []kv
	}{
		{"kid as text string", set(good, int64(4), id)},
		{"content type text", set(good, int64(3), "application/json")},
		{"content type uint", set(good, int64(3), uint64(50))},
		// The signature covers the bytes received: a header in another
		// order than Core Deterministic Encoding verifies as it is.
		{"labels in reverse order", []kv{good[4], good[3], good[2], good[1], good[0]}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prot := encodeMap(t, c.hdr...)
			r := mustParse(t, signRaw(t, m.signer, gocose.AlgorithmES256, prot, payloadFor(govwire.MsgBallot)))
			if r.MemberID != id || r.Type != govwire.MsgBallot || r.ProposalID != testProposalID || !bytes.Equal(r.RawProtected, prot) {
				t.Errorf("parsed %+v", r)
			}
			if err := r.Verify(m.cert); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestParseRequestMalformedEnvelope(t *testing.T) {
	m := newMember(t, "ed25519")
	raw := mustSign(t, m, govwire.MsgAck, t0, payloadFor(govwire.MsgAck))
	r := mustParse(t, raw)
	prot, payload, sig := r.RawProtected, r.Payload, r.Signature
	enc := func(v any) []byte {
		b, err := cbor.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tagged := func(elems ...any) []byte { return enc(cbor.Tag{Number: 18, Content: elems}) }
	// The signature as a bstr with a two-byte length where one would do.
	longSig := append([]byte{0x59, 0x00, byte(len(sig))}, sig...)
	nonCanonical := append(bytes.Clone(raw[:len(raw)-len(sig)-2]), longSig...)
	indefPayload := append(append([]byte{0xd2, 0x84}, enc(prot)...), 0xa0, 0x5f)
	indefPayload = append(append(append(indefPayload, enc(payload)...), 0xff), enc(sig)...)

	cases := []struct {
		name   string
		b      []byte
		detail string
	}{
		{"empty", nil, "empty request"},
		{"too large", make([]byte, govwire.MaxRequestBytes+1), "exceeds"},
		{"untagged", raw[1:], "not a tagged COSE_Sign1"},
		{"tag 98 (COSE_Sign)", enc(cbor.Tag{Number: 98, Content: []any{prot, map[any]any{}, payload, sig}}), "not a tagged COSE_Sign1"},
		{"tag 18 in two bytes", append([]byte{0xd8, 0x12}, raw[1:]...), "not a tagged COSE_Sign1"},
		{"array of 3", tagged(prot, map[any]any{}, payload), "COSE_Sign1: cbor"},
		{"array of 5", tagged(prot, map[any]any{}, payload, sig, sig), "COSE_Sign1: cbor"},
		{"trailing byte", append(bytes.Clone(raw), 0xf6), "COSE_Sign1: cbor"},
		{"protected header as map", tagged(map[any]any{int64(1): int64(-8)}, map[any]any{}, payload, sig), "protected header: not a byte string"},
		{"unprotected kid", tagged(prot, map[any]any{int64(4): []byte("x")}, payload, sig), "unprotected header is not an empty map"},
		{"unprotected nil", tagged(prot, nil, payload, sig), "unprotected header is not an empty map"},
		{"detached payload", tagged(prot, map[any]any{}, nil, sig), "payload is detached"},
		{"payload as text", tagged(prot, map[any]any{}, string(payload), sig), "payload: not a byte string"},
		{"payload indefinite length", indefPayload, "COSE_Sign1: cbor"},
		{"empty signature", tagged(prot, map[any]any{}, payload, []byte{}), "empty signature"},
		{"signature as text", tagged(prot, map[any]any{}, payload, string(sig)), "signature: not a byte string"},
		{"non-minimal signature length", nonCanonical, "not canonically encoded"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := govwire.ParseRequest(c.b)
			if !errors.Is(err, govwire.ErrMalformed) || !strings.Contains(err.Error(), c.detail) {
				t.Errorf("ParseRequest = %v, want ErrMalformed with %q", err, c.detail)
			}
		})
	}
}

func TestEmptyPayloadTypes(t *testing.T) {
	m := newMember(t, "ed25519")
	for _, typ := range []govwire.MsgType{govwire.MsgWithdrawal, govwire.MsgStateDigest} {
		for _, p := range []string{"", "{}", " { }\n"} {
			if _, err := govwire.ParseRequest(mustSign(t, m, typ, t0, []byte(p))); err != nil {
				t.Errorf("%s with payload %q: %v", typ, p, err)
			}
		}
		for _, p := range []string{`{"x":1}`, `[]`, `null`, `{}{}`, `{`} {
			_, err := govwire.ParseRequest(mustSign(t, m, typ, t0, []byte(p)))
			if !errors.Is(err, govwire.ErrMalformed) || !strings.Contains(err.Error(), string(typ)+" payload") {
				t.Errorf("%s with payload %q: %v, want ErrMalformed", typ, p, err)
			}
		}
	}
}

func TestCheckFresh(t *testing.T) {
	const maxAge = 10 * time.Minute
	r := &govwire.Request{CreatedAt: t0.Unix()}
	cases := []struct {
		name  string
		r     *govwire.Request
		now   time.Time
		age   time.Duration
		stale bool
	}{
		{"now", r, t0, maxAge, false},
		{"exactly maxAge old", r, t0.Add(maxAge), maxAge, false},
		{"maxAge and 1ns old", r, t0.Add(maxAge + time.Nanosecond), maxAge, true},
		{"maxAge and 1s old", r, t0.Add(maxAge + time.Second), maxAge, true},
		{"exactly maxAge ahead", r, t0.Add(-maxAge), maxAge, false},
		{"maxAge and 1ns ahead", r, t0.Add(-maxAge - time.Nanosecond), maxAge, true},
		{"zero maxAge, same second", r, t0, 0, false},
		{"zero maxAge, 1ns later", r, t0.Add(time.Nanosecond), 0, true},
		{"negative maxAge", r, t0, -time.Second, true},
		{"created at epoch", &govwire.Request{CreatedAt: 0}, t0, maxAge, true},
		{"created at MaxInt64", &govwire.Request{CreatedAt: math.MaxInt64}, t0, time.Duration(math.MaxInt64), true},
		{"zero now", r, time.Time{}, maxAge, true},
		{"nil request", nil, t0, maxAge, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.r.CheckFresh(c.now, c.age)
			if c.stale != (err != nil) || (err != nil && !errors.Is(err, govwire.ErrStale)) {
				t.Errorf("CheckFresh = %v, want stale=%v", err, c.stale)
			}
		})
	}
}

func TestPayloadStrict(t *testing.T) {
	m := newMember(t, "ed25519")
	action := `{"name":"set_member","args":{}}`
	actions := func(n int) string {
		return `{"actions":[` + strings.TrimSuffix(strings.Repeat(action+",", n), ",") + `]}`
	}
	name := func(n int) string { return `{"actions":[{"name":"` + strings.Repeat("x", n) + `"}]}` }
	cases := []struct {
		typ     govwire.MsgType
		payload string
		detail  string // "" means valid
	}{
		{govwire.MsgProposal, actions(1), ""},
		{govwire.MsgProposal, actions(64), ""},
		{govwire.MsgProposal, name(100), ""},
		{govwire.MsgProposal, `{"actions":[{"name":"a","args":{"x":[1,{"y":null}]}}]}`, ""},
		{govwire.MsgProposal, actions(0), "0 actions"},
		{govwire.MsgProposal, actions(65), "65 actions"},
		{govwire.MsgProposal, name(0), "name of 0 bytes"},
		{govwire.MsgProposal, name(101), "name of 101 bytes"},
		{govwire.MsgProposal, `{}`, "missing actions"},
		{govwire.MsgProposal, ``, "not JSON"},
		{govwire.MsgProposal, `{"actions":null}`, "actions: wrong JSON type"},
		{govwire.MsgProposal, `{"actions":{}}`, "actions: wrong JSON type"},
		{govwire.MsgProposal, `{"actions":[` + action + `],"extra":1}`, `unknown field "extra"`},
		{govwire.MsgProposal, `{"Actions":[` + action + `]}`, `unknown field "Actions"`},
		{govwire.MsgProposal, `{"actions":[],"actions":[` + action + `]}`, `duplicate field "actions"`},
		{govwire.MsgProposal, `{"actions":[{"name":"a","argz":{}}]}`, `action 0: unknown field "argz"`},
		{govwire.MsgProposal, `{"actions":[{"name":"a","args":[]}]}`, "args is not a JSON object"},
		{govwire.MsgProposal, `{"actions":[{"args":{}}]}`, "name: missing"},
		{govwire.MsgProposal, `{"actions":[{"name":1}]}`, "name: wrong JSON type"},
		{govwire.MsgProposal, `{"actions":["set_member"]}`, "action 0: not a JSON object"},
		{govwire.MsgProposal, actions(1) + ` {}`, "data after the JSON object"},
		{govwire.MsgBallot, `{"ballot":"export function vote() { return false }"}`, ""},
		{govwire.MsgBallot, `{"ballot":""}`, "empty ballot script"},
		{govwire.MsgBallot, `{"ballot":true}`, "wrong JSON type"},
		{govwire.MsgBallot, `{"ballot":"x","proposal":"y"}`, `unknown field "proposal"`},
		{govwire.MsgBallot, `{}`, "ballot: ballot: missing"},
		{govwire.MsgAck, `{"state_digest":"` + strings.Repeat("0f", 32) + `"}`, ""},
		{govwire.MsgAck, `{"state_digest":"` + strings.Repeat("0F", 32) + `"}`, "not 64 lowercase hex"},
		{govwire.MsgAck, `{"state_digest":"` + strings.Repeat("0f", 31) + `"}`, "not 64 lowercase hex"},
		{govwire.MsgAck, `{"state_digest":"xyz"}`, "not 64 lowercase hex"},
		{govwire.MsgAck, `{"state_digest":"` + strings.Repeat("0f", 32) + `","x":1}`, `unknown field "x"`},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d_%s", i, c.typ), func(t *testing.T) {
			r := mustParse(t, mustSign(t, m, c.typ, t0, []byte(c.payload)))
			var err error
			switch c.typ {
			case govwire.MsgProposal:
				_, err = r.Proposal()
			case govwire.MsgBallot:
				_, err = r.Ballot()
			case govwire.MsgAck:
				_, err = r.Ack()
			}
			if c.detail == "" {
				if err != nil {
					t.Errorf("%s: %v", c.payload, err)
				}
				return
			}
			if !errors.Is(err, govwire.ErrMalformed) || !strings.Contains(err.Error(), c.detail) {
				t.Errorf("%.80s: %v, want ErrMalformed with %q", c.payload, err, c.detail)
			}
		})
	}
}

// TestDigest: re-signing the same payload gives a new digest whenever the
// bytes differ: a later created_at for every key, and a fresh random
// signature for ECDSA. Ed25519 is deterministic: re-signing the same
// content at the same second gives the same bytes, which is a replay and
// must have the same digest.
func TestDigest(t *testing.T) {
	for _, kind := range []string{"p256", "p384", "ed25519"} {
		m := newMember(t, kind)
		payload := payloadFor(govwire.MsgProposal)
		a := mustParse(t, mustSign(t, m, govwire.MsgProposal, t0, payload))
		later := mustParse(t, mustSign(t, m, govwire.MsgProposal, t0.Add(time.Second), payload))
		same := mustParse(t, mustSign(t, m, govwire.MsgProposal, t0, payload))
		if a.Digest() == later.Digest() {
			t.Errorf("%s: a request re-signed a second later has the same digest", kind)
		}
		if gotSame := a.Digest() == same.Digest(); gotSame != (kind == "ed25519") {
			t.Errorf("%s: re-signed at the same second: same digest = %v", kind, gotSame)
		}
	}
}

func TestSignRequestRefuses(t *testing.T) {
	a, b := newMember(t, "p256"), newMember(t, "p256")
	cases := []struct {
		name string
		err  func() error
	}{
		{"certificate of another key", func() error {
			_, err := govwire.SignRequest(rand.Reader, a.signer, b.cert, govwire.MsgProposal, t0, "", nil)
			return err
		}},
		{"ballot without proposal id", func() error {
			_, err := govwire.SignRequest(rand.Reader, a.signer, a.cert, govwire.MsgBallot, t0, "", nil)
			return err
		}},
		{"proposal with proposal id", func() error {
			_, err := govwire.SignRequest(rand.Reader, a.signer, a.cert, govwire.MsgProposal, t0, "x", nil)
			return err
		}},
		{"unknown type", func() error {
			_, err := govwire.SignRequest(rand.Reader, a.signer, a.cert, "vote", t0, "", nil)
			return err
		}},
		{"before the epoch", func() error {
			_, err := govwire.SignRequest(rand.Reader, a.signer, a.cert, govwire.MsgProposal, time.Unix(-1, 0), "", nil)
			return err
		}},
		{"nil signer", func() error {
			_, err := govwire.SignRequest(rand.Reader, nil, a.cert, govwire.MsgProposal, t0, "", nil)
			return err
		}},
		{"payload too large", func() error {
			_, err := govwire.SignRequest(rand.Reader, a.signer, a.cert, govwire.MsgProposal, t0, "", make([]byte, govwire.MaxRequestBytes))
			return err
		}},
	}
	for _, c := range cases {
		if err := c.err(); err == nil {
			t.Errorf("%s: SignRequest succeeded", c.name)
		}
	}
}
