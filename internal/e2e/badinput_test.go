package e2e

import (
	"bytes"
	"crypto/elliptic"
	"encoding/hex"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	gocose "github.com/veraison/go-cose"
)

// badCase is one rejected registration: the body, its Content-Type, and
// the status and title errors.md gives for it.
type badCase struct {
	name        string
	node        *node
	contentType string
	body        []byte
	status      int
	title       string
}

func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The main node, and one that accepts ES384 only and statements of at
	// most 4096 bytes.
	main := startNode(t, filepath.Join(dir, "main"))
	strict := startNode(t, filepath.Join(dir, "strict"), "--algorithms", "ES384", "--max-statement-bytes", "4096")

	pub := newPublisher(t, "e2e bad-input publisher")
	other := newPublisher(t, "e2e other publisher")
	// Each node gets one good registration first, so /checkpoint exists
	// and the comparison below is between two real checkpoints.
	main.mustRegister(t, pub.unique(t))
	p384, err := makePublisher("e2e P-384 publisher", elliptic.P384())
	if err != nil {
		t.Fatal(err)
	}
	strict.mustRegister(t, p384.unique(t))

	good := pub.unique(t)

	withTag := func(tag byte) []byte {
		b := bytes.Clone(good)
		if b[0] != 0xd2 {
			t.Fatalf("statement does not start with tag 18: % x", b[:4])
		}
		b[0] = tag
		return b
	}
	flipLast := bytes.Clone(good)
	flipLast[len(flipLast)-1] ^= 0x01

	es256 := int64(gocose.AlgorithmES256)
	claims := map[int64]any{1: pub.issuer, 2: "pkg:e2e/bad", 6: time.Now().Unix()}
	noCWT := signRaw(t, pub.key, map[int64]any{1: es256, 3: "text/plain", 33: pub.chain}, []byte("no claims"))
	noIss := signRaw(t, pub.key, map[int64]any{1: es256, 15: map[int64]any{2: "pkg:e2e/bad"}, 33: pub.chain}, []byte("no iss"))
	noKey := signRaw(t, pub.key, map[int64]any{1: es256, 15: claims}, []byte("no kid, no x5chain"))
	unknownAlg := signRaw(t, pub.key, map[int64]any{1: int64(-65000), 15: claims, 33: pub.chain}, []byte("unknown alg"))

	// The leaf of pub under other's CA: the CA did not sign the leaf.
	badChain := pub.sign(t, []byte("bad chain"), func(o *cose.SignOptions) {
		o.X5Chain = [][]byte{pub.chain[0], other.chain[1]}
	})
	// Signed by pub with pub's chain, but naming other's did:x509.
	mismatch := pub.sign(t, []byte("issuer mismatch"), func(o *cose.SignOptions) { o.Issuer = other.issuer })
	// A valid ES256 statement, but the strict node accepts ES384 only.
	es256Stmt := pub.unique(t)
	// Larger than the strict node's 4096 bytes.
	oversize := p384.sign(t, bytes.Repeat([]byte("x"), 5000))
	if len(oversize) <= 4096 {
		t.Fatalf("oversize statement is only %d bytes", len(oversize))
	}

	const ctCOSE = "application/cose"
	cases := []badCase{
		{"non-COSE bytes", main, ctCOSE, []byte("this is not CBOR at all"), 400, "NotCOSESign1"},
		{"untagged COSE_Sign1", main, ctCOSE, good[1:], 400, "UntaggedCOSESign1"},
		{"wrong tag (17, COSE_Mac0)", main, ctCOSE, withTag(0xd1), 400, "UntaggedCOSESign1"},
		{"missing CWT claims", main, ctCOSE, noCWT, 400, "MissingCWTClaims"},
		{"CWT without iss", main, ctCOSE, noIss, 400, "MissingCWTClaims"},
		{"neither kid nor x5chain", main, ctCOSE, noKey, 400, "MissingIssuerKey"},
		{"unknown algorithm", main, ctCOSE, unknownAlg, 400, "AlgorithmNotAllowed"},
		{"algorithm not in the node's list", strict, ctCOSE, es256Stmt, 400, "AlgorithmNotAllowed"},
		{"bad signature", main, ctCOSE, flipLast, 400, "InvalidSignature"},
		{"CA did not sign the leaf", main, ctCOSE, badChain, 400, "InvalidCertificateChain"},
		{"did:x509 issuer not matching the chain", main, ctCOSE, mismatch, 400, "IssuerMismatch"},
		{"oversize", strict, ctCOSE, oversize, 413, "PayloadTooLarge"},
		{"truncated", main, ctCOSE, good[:len(good)-10], 400, "NotCOSESign1"},
		{"trailing garbage", main, ctCOSE, append(bytes.Clone(good), 0x00), 400, "NotCOSESign1"},
		{"wrong Content-Type", main, "application/json", good, 415, "UnsupportedMediaType"},
		{"no Content-Type", main, "", good, 415, "UnsupportedMediaType"},
		{"empty body", main, ctCOSE, []byte{}, 400, "NotCOSESign1"},
	}

	type snapshot struct {
		h  health
		cp []byte
	}
	snap := func(n *node) snapshot {
		h := n.waitIdle(t)
		r := n.get(t, "/checkpoint")
		if r.Status != http.StatusOK {
			t.Fatalf("/checkpoint: %d %s", r.Status, describeProblem(r))
		}
		return snapshot{h, r.Body}
	}
	before := map[*node]snapshot{main: snap(main), strict: snap(strict)}

	for _, c := range cases {
		r, err := c.node.do(http.MethodPost, "/entries", c.contentType, c.body)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		wantProblem(t, c.name, r, c.status, c.title)
	}
	// The titles are not all one catch-all: errors.md gives these cases
	// distinct titles, so the responses must be distinct too.
	titles := map[string]bool{}
	for _, c := range cases {
		titles[c.title] = true
	}
	if len(titles) < 10 {
		t.Fatalf("only %d distinct titles expected; the case table is wrong", len(titles))
	}

	time.Sleep(200 * time.Millisecond) // time for a write to show if there were one: not a wait
	for n, b := range before {
		a := snap(n)
		if a.h.LedgerSize != b.h.LedgerSize || a.h.CheckpointSize != b.h.CheckpointSize {
			t.Errorf("%s: bad input changed the ledger: %+v, then %+v", filepath.Base(n.Dir), b.h, a.h)
		}
		if !bytes.Equal(a.cp, b.cp) {
			t.Errorf("%s: bad input changed /checkpoint:\n%s\nthen\n%s", filepath.Base(n.Dir), b.cp, a.cp)
		}
	}

	// None of the rejected statements can be found.
	for _, c := range cases {
		if s, err := cose.ParseSign1(c.body, cose.ParseOptions{}); err == nil {
			e := s.LeafEntry()
			r := c.node.get(t, "/entries/"+hex.EncodeToString(e[:]))
			if r.Status != http.StatusNotFound {
				t.Errorf("%s: GET its entry: %d, want 404", c.name, r.Status)
			}
		}
	}

	// And the node still registers good statements afterwards.
	main.mustRegister(t, good)
}
