// Command gen writes Charter's published test vectors: transparent
// statements, receipts and checkpoints made with Charter's own code paths
// (cose.SignStatement, log.Tree, cose.SignTreeHead, cose.NewInclusionReceipt,
// log.SignCheckpointNote, …), so that other SCITT implementations can check
// themselves against Charter's receipts.
//
//	go run ./testvectors/gen -version v2 -out testvectors/v2
//
// Versions differ only in the receipts' tree heads: v1 receipts do not
// bind the tree size (as Charter issued them before the signed tree size),
// v2 receipts carry it as the signed CWT claim -69162 (as charterd does
// now) and add the case fail-rewritten-tree-size. Both use the same seeds,
// so their keys are the same.
//
// Every key and certificate comes from a fixed seed, so issuers, key ids,
// service keys, note keys and EdDSA signatures are the same on every run.
// ECDSA signatures are randomized (and Go ignores custom randomness for
// them), so ES256 statements, receipts and the roots of trees that contain
// a checkpoint transaction differ from run to run; the vectors are generated
// once and checked in.
package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/cose/cosetest"
	clog "github.com/charterlog/charter/log"
	gocose "github.com/veraison/go-cose"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	// ServiceIssuer is the receipts' CWT iss, the checkpoint origin and the
	// note key name.
	serviceIssuer = "charter.example/testvectors"
	// receiptSubject is the receipts' CWT sub: the constant charterd uses
	// (internal/node/signer.go ReceiptSubject), since one tree-head
	// signature serves every receipt under it.
	receiptSubject = "charter.checkpoint"
	seedPrefix     = "charter test vectors v1 :: "

	treeSize       = 8
	statementIndex = 2
	// checkpointSize is the size of the tree head recorded by the checkpoint
	// transaction at leaf index checkpointSize (seqno checkpointSize+1), as
	// charterd does; it is also the first size of the consistency receipt.
	checkpointSize = 3
	view           = 1
)

var (
	statementIAT = time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	receiptIAT   = time.Date(2026, 9, 1, 1, 0, 0, 0, time.UTC).Unix()
	certFrom     = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	certTo       = time.Date(2036, 1, 1, 0, 0, 0, 0, time.UTC)
	ekuCodeSign  = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 3}
)

// version is the vectors version being generated, "v1" or "v2".
var version = "v2"

// signedSize reports whether receipts bind their tree size (v2 on).
func signedSize() bool { return version != "v1" }

func main() {
	out := flag.String("out", "testvectors/v2", "directory to write the vectors into (created; existing case folders are replaced)")
	flag.StringVar(&version, "version", version, "vectors version: v1 (receipts without the signed tree size) or v2")
	flag.Parse()
	if version != "v1" && version != "v2" {
		fmt.Fprintln(os.Stderr, "gen: -version must be v1 or v2")
		os.Exit(2)
	}
	if err := generate(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// seedReader is a deterministic byte stream: SHA-256(seed ‖ counter) blocks.
type seedReader struct {
	seed []byte
	n    uint64
	buf  []byte
}

func (r *seedReader) Read(p []byte) (int, error) {
	for len(r.buf) < len(p) {
		var c [8]byte
		binary.BigEndian.PutUint64(c[:], r.n)
		r.n++
		h := sha256.Sum256(append(append([]byte{}, r.seed...), c[:]...))
		r.buf = append(r.buf, h[:]...)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func seed(label string) []byte {
	h := sha256.Sum256([]byte(seedPrefix + label))
	return h[:]
}

func ed25519Key(label string) ed25519.PrivateKey { return ed25519.NewKeyFromSeed(seed(label)) }

// p256Key derives a P-256 key from a fixed scalar (ecdsa.GenerateKey ignores
// custom randomness since Go 1.26).
func p256Key(label string) (*ecdsa.PrivateKey, error) {
	for i := 0; ; i++ {
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed(fmt.Sprintf("%s #%d", label, i)))
		if err == nil {
			return k, nil
		}
		if i > 8 {
			return nil, err
		}
	}
}

// publisher is a statement signer with its x5chain and did:x509 issuer.
type publisher struct {
	signer crypto.Signer
	chain  [][]byte
	issuer string
}

// newPublishers makes one Ed25519 root CA and two leaves (P-256 for ES256,
// Ed25519 for EdDSA). Every certificate is signed with Ed25519, which is
// deterministic, so the DER, and with it the did:x509 fingerprint, is stable.
func newPublishers() (es256, eddsa *publisher, err error) {
	caKey := ed25519Key("publisher root CA")
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Charter Test Vectors Root CA", Organization: []string{"Charter Test Vectors"}},
		NotBefore:             certFrom,
		NotAfter:              certTo,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, err
	}
	mk := func(serial int64, cn string, key crypto.Signer) (*publisher, error) {
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(serial),
			Subject:               pkix.Name{CommonName: cn, Organization: []string{"Charter Test Vectors"}},
			NotBefore:             certFrom,
			NotAfter:              certTo,
			KeyUsage:              x509.KeyUsageDigitalSignature,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
			BasicConstraintsValid: true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			return nil, err
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		did, err := cose.NewDIDX509([]*x509.Certificate{leaf, ca}, 1, "subject:CN:"+cn, "eku:"+ekuCodeSign.String())
		if err != nil {
			return nil, err
		}
		return &publisher{signer: key, chain: [][]byte{der, caDER}, issuer: did}, nil
	}
	ecKey, err := p256Key("publisher ES256 leaf")
	if err != nil {
		return nil, nil, err
	}
	if es256, err = mk(2, "Charter Test Vectors ES256 Publisher", ecKey); err != nil {
		return nil, nil, err
	}
	if eddsa, err = mk(3, "Charter Test Vectors EdDSA Publisher", ed25519Key("publisher EdDSA leaf")); err != nil {
		return nil, nil, err
	}
	return es256, eddsa, nil
}

// caseSpec describes one vector.
type caseSpec struct {
	ID          string
	Description string
	Alg         string // "ES256" or "EdDSA"
	HashEnv     bool
	Consistency bool
	// Mutation: "" (valid), "tampered-path", "wrong-service-key",
	// "wrong-leaf", "bad-statement-signature", "payload-mismatch",
	// "rewritten-tree-size".
	Mutation    string
	FailureCode string
	FailedCheck string // statement_signature, receipt or payload
	SinceV2     bool   // only in v2 and later
}

var cases = []caseSpec{
	{ID: "valid-es256", Alg: "ES256", Description: "ES256 (P-256) statement with x5chain and did:x509 issuer; ES256 receipt, vds 1, leaf 2 of a tree of 8."},
	{ID: "valid-eddsa", Alg: "EdDSA", Description: "EdDSA (Ed25519) statement with x5chain and did:x509 issuer; ES256 receipt, vds 1."},
	{ID: "valid-hash-envelope", Alg: "ES256", HashEnv: true, Description: "ES256 hash-envelope statement (RFC 9995: 258 = -16 SHA-256, 259, 260); payload.bin is the preimage whose SHA-256 is the signed payload."},
	{ID: "valid-consistency", Alg: "EdDSA", Consistency: true, Description: "EdDSA statement with an inclusion receipt at size 8, plus consistency-receipt.cose proving the size-3 tree (recorded by the checkpoint transaction at index 3) is a prefix of the size-8 tree; both roots are in expected.json."},
	{ID: "fail-tampered-path", Alg: "EdDSA", Mutation: "tampered-path", FailureCode: "TAMPERED_INCLUSION_PATH", FailedCheck: "receipt",
		Description: "One byte of the first inclusion-path hash is flipped after signing: the recomputed root is not the signed root, so the receipt signature fails. The statement signature is valid."},
	{ID: "fail-wrong-service-key", Alg: "ES256", Mutation: "wrong-service-key", FailureCode: "UNKNOWN_SERVICE_KEY", FailedCheck: "receipt",
		Description: "The receipt is well formed but signed by a P-256 key (kid = its own key id) that is not in service-keys.cbor."},
	{ID: "fail-wrong-leaf", Alg: "EdDSA", Mutation: "wrong-leaf", FailureCode: "WRONG_LEAF", FailedCheck: "receipt",
		Description: "The attached receipt is an honest receipt for another statement (receipt_leaf_entry); from this statement's leaf entry the path leads to another root, so the receipt signature fails."},
	{ID: "fail-bad-statement-signature", Alg: "EdDSA", Mutation: "bad-statement-signature", FailureCode: "BAD_STATEMENT_SIGNATURE", FailedCheck: "statement_signature",
		Description: "The first byte of the statement signature is flipped; the receipt was minted over that tampered statement's leaf entry and verifies, the statement signature does not."},
	{ID: "fail-payload-mismatch", Alg: "ES256", Mutation: "payload-mismatch", FailureCode: "PAYLOAD_MISMATCH", FailedCheck: "payload",
		Description: "payload.bin differs from the payload embedded and signed in the statement; both signatures verify, the payload check fails."},
	{ID: "fail-rewritten-tree-size", Alg: "EdDSA", Mutation: "rewritten-tree-size", FailureCode: "REWRITTEN_TREE_SIZE", FailedCheck: "receipt", SinceV2: true,
		Description: "An honest receipt (signed tree size 8, CWT claim -69162) whose unprotected inclusion proof was rewritten to tree_size 7: index 2 has the same proof shape in trees of 7 and 8 leaves, so the path still leads to the signed root, but the proof's tree_size is not the signed one."},
}

// keys holds everything with a fixed seed, shared by all cases.
type keys struct {
	es256, eddsa *publisher
	service      *ecdsa.PrivateKey
	serviceKid   []byte
	rogue        *ecdsa.PrivateKey
	rogueKid     []byte
	keySet       []byte
	noteSigner   note.Signer
	noteVerifier string
}

func newKeys() (*keys, error) {
	var k keys
	var err error
	if k.es256, k.eddsa, err = newPublishers(); err != nil {
		return nil, fmt.Errorf("publishers: %w", err)
	}
	if k.service, err = p256Key("service key"); err != nil {
		return nil, err
	}
	if k.rogue, err = p256Key("rogue service key"); err != nil {
		return nil, err
	}
	sk, err := cose.NewKey(k.service.Public())
	if err != nil {
		return nil, err
	}
	k.serviceKid = sk.Kid
	if k.rogueKid, err = cose.KeyID(k.rogue.Public()); err != nil {
		return nil, err
	}
	if k.keySet, err = cose.MarshalKeySet([]cose.Key{sk}); err != nil {
		return nil, err
	}
	skey, vkey, err := note.GenerateKey(&seedReader{seed: seed("note key")}, serviceIssuer)
	if err != nil {
		return nil, err
	}
	if k.noteSigner, err = note.NewSigner(skey); err != nil {
		return nil, err
	}
	k.noteVerifier = vkey
	return &k, nil
}

// mapHashes is the tlog.HashReader behind the log.Tree.
type mapHashes map[int64]tlog.Hash

func (m mapHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		h, ok := m[x]
		if !ok {
			return nil, fmt.Errorf("no stored hash %d", x)
		}
		out[i] = h
	}
	return out, nil
}

func filler(id string, i int) [32]byte {
	return sha256.Sum256([]byte(fmt.Sprintf("%s%s :: filler leaf %d", seedPrefix, id, i)))
}

func payloadFor(c caseSpec) []byte {
	return []byte(fmt.Sprintf(`{"artifact":"pkg:generic/charter-testvectors@1.0.0","case":%q,"note":"Charter test vector payload"}`+"\n", c.ID))
}

func signStatement(k *keys, c caseSpec, subject string, payload []byte) ([]byte, *publisher, error) {
	p := k.eddsa
	if c.Alg == "ES256" {
		p = k.es256
	}
	opts := cose.SignOptions{
		Issuer:      p.issuer,
		Subject:     subject,
		ContentType: "application/json",
		X5Chain:     p.chain,
		IssuedAt:    statementIAT,
	}
	if c.HashEnv {
		opts.HashEnvelope = true
		opts.PayloadHashAlg = cose.AlgorithmSHA256
		opts.PayloadLocation = "https://charter.example/testvectors/" + version + "/" + c.ID + "/payload.bin"
	}
	b, err := cose.SignStatement(rand.Reader, p.signer, opts, payload)
	return b, p, err
}

func leafEntry(statement []byte) ([32]byte, error) {
	st, err := cose.ParseStatement(statement, cose.ParseOptions{MaxSize: len(statement)})
	if err != nil {
		return [32]byte{}, err
	}
	return st.LeafEntry(), nil
}

// Expected is expected.json.
type Expected struct {
	ID          string `json:"id"`
	Description string `json:"description"`

	Issuer                 string `json:"issuer"`
	Subject                string `json:"subject"`
	StatementAlg           string `json:"statement_alg"`
	HashEnvelope           bool   `json:"hash_envelope"`
	ContentType            string `json:"content_type"`
	StatementIAT           int64  `json:"statement_iat"`
	StatementDeterministic bool   `json:"statement_deterministic"`

	LeafEntry        string `json:"leaf_entry"`
	ReceiptLeafEntry string `json:"receipt_leaf_entry"`
	LeafIndex        uint64 `json:"leaf_index"`
	TreeSize         uint64 `json:"tree_size"`
	// ProofTreeSize is the tree_size written in receipt.cose's proof when
	// it is not the tree's (fail-rewritten-tree-size only).
	ProofTreeSize uint64   `json:"proof_tree_size,omitempty"`
	Path          []string `json:"path"`
	Root          string   `json:"root"`
	TreeEntries   []string `json:"tree_entries"`

	Receipt struct {
		Alg     string `json:"alg"`
		Kid     string `json:"kid"`
		VDS     int    `json:"vds"`
		Issuer  string `json:"iss"`
		Subject string `json:"sub"`
		IAT     int64  `json:"iat"`
		// SignedTreeSize is the CWT claim -69162 (v2 on); absent in v1.
		SignedTreeSize uint64 `json:"signed_tree_size,omitempty"`
	} `json:"receipt"`

	Checkpoint struct {
		Origin   string `json:"origin"`
		TreeSize uint64 `json:"tree_size"`
		Root     string `json:"root"`
	} `json:"checkpoint"`

	Consistency *ConsistencyExpect `json:"consistency,omitempty"`

	Verdict     string          `json:"verdict"` // VALID or INVALID
	FailureCode string          `json:"failure_code,omitempty"`
	FailedCheck string          `json:"failed_check,omitempty"`
	Checks      map[string]bool `json:"checks"`
}

// ConsistencyExpect describes consistency-receipt.cose.
type ConsistencyExpect struct {
	TreeSize1 uint64   `json:"tree_size_1"`
	TreeSize2 uint64   `json:"tree_size_2"`
	Root1     string   `json:"root_1"`
	Root2     string   `json:"root_2"`
	Path      []string `json:"path"`
}

func hexList(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = hex.EncodeToString(b)
	}
	return out
}

// files is one case's output.
type files map[string][]byte

func buildCase(k *keys, c caseSpec) (files, error) {
	subject := "pkg:generic/charter-testvectors@1.0.0#" + c.ID
	signed := payloadFor(c)
	statement, pub, err := signStatement(k, c, subject, signed)
	if err != nil {
		return nil, fmt.Errorf("sign statement: %w", err)
	}
	if c.Mutation == "bad-statement-signature" {
		st, err := cose.ParseStatement(statement, cose.ParseOptions{MaxSize: len(statement)})
		if err != nil {
			return nil, err
		}
		// The signature bstr is the last item of the COSE_Sign1 array.
		statement = bytes.Clone(statement)
		statement[len(statement)-len(st.Signature)] ^= 0x01
	}
	entry, err := leafEntry(statement)
	if err != nil {
		return nil, err
	}

	// The leaf the receipt is minted for: this statement's, or for
	// wrong-leaf another statement by the same publisher.
	receiptEntry := entry
	if c.Mutation == "wrong-leaf" {
		other, _, err := signStatement(k, c, subject+"-other", []byte(`{"other":"statement"}`+"\n"))
		if err != nil {
			return nil, err
		}
		if receiptEntry, err = leafEntry(other); err != nil {
			return nil, err
		}
	}

	// The ledger: fillers, the registration at index 2, a checkpoint
	// transaction over the first 3 leaves at index 3, then fillers.
	store := mapHashes{}
	tree := clog.NewTree(0, store)
	write := func(i int64, h tlog.Hash) { store[i] = h }
	var entries [][]byte
	appendLeaf := func(e [32]byte) error {
		if _, err := tree.Append(e, write); err != nil {
			return err
		}
		entries = append(entries, bytes.Clone(e[:]))
		return nil
	}
	claims := cose.ReceiptClaims{Issuer: serviceIssuer, Subject: receiptSubject, IssuedAt: receiptIAT}
	cpClaims := cose.ReceiptClaims{Issuer: serviceIssuer, Subject: receiptSubject, IssuedAt: receiptIAT - 60}
	if signedSize() {
		claims.TreeSize, cpClaims.TreeSize = treeSize, checkpointSize
	}
	var root3 tlog.Hash
	for i := 0; i < treeSize; i++ {
		var e [32]byte
		switch i {
		case statementIndex:
			e = receiptEntry
		case checkpointSize:
			if root3, err = tree.Root(checkpointSize); err != nil {
				return nil, err
			}
			prot, sig, err := cose.SignTreeHead(rand.Reader, k.service, gocose.AlgorithmES256, k.serviceKid, cpClaims, root3[:])
			if err != nil {
				return nil, err
			}
			nt, err := clog.SignCheckpointNote(serviceIssuer, checkpointSize, root3, k.noteSigner)
			if err != nil {
				return nil, err
			}
			body, err := clog.MarshalCheckpoint(&clog.Checkpoint{TreeSize: checkpointSize, Root: root3, IssuedAt: receiptIAT - 60, Protected: prot, Signature: sig, Note: nt})
			if err != nil {
				return nil, err
			}
			e = clog.ComputeEntry(clog.TxCheckpoint, view, uint64(i+1), body)
		default:
			e = filler(c.ID, i)
		}
		if err := appendLeaf(e); err != nil {
			return nil, err
		}
	}
	root, err := tree.Root(treeSize)
	if err != nil {
		return nil, err
	}
	path, err := tree.InclusionProof(treeSize, statementIndex)
	if err != nil {
		return nil, err
	}

	signer, kid := k.service, k.serviceKid
	if c.Mutation == "wrong-service-key" {
		signer, kid = k.rogue, k.rogueKid
	}
	prot, sig, err := cose.SignTreeHead(rand.Reader, signer, gocose.AlgorithmES256, kid, claims, root[:])
	if err != nil {
		return nil, err
	}
	if c.Mutation == "tampered-path" {
		path[0] = bytes.Clone(path[0])
		path[0][0] ^= 0x01
	}
	receipt, err := cose.NewInclusionReceipt(prot, sig, treeSize, statementIndex, path)
	if err != nil {
		return nil, err
	}
	proofSize := uint64(treeSize)
	if c.Mutation == "rewritten-tree-size" {
		proofSize = rewrittenTreeSize
		if receipt, err = rewriteTreeSize(receipt, proofSize); err != nil {
			return nil, err
		}
	}
	ts, err := cose.AttachReceipts(statement, receipt)
	if err != nil {
		return nil, err
	}
	checkpoint, err := clog.SignCheckpointNote(serviceIssuer, treeSize, root, k.noteSigner)
	if err != nil {
		return nil, err
	}

	payload := signed
	if c.Mutation == "payload-mismatch" {
		payload = bytes.Replace(bytes.Clone(signed), []byte("Charter test vector payload"), []byte("Charter test vector PAYLOAD"), 1)
	}

	out := files{
		"statement.cose":             statement,
		"payload.bin":                payload,
		"receipt.cose":               receipt,
		"transparent-statement.cose": ts,
		"service-keys.cbor":          k.keySet,
		"checkpoint.txt":             checkpoint,
		"note-verifier.txt":          []byte(k.noteVerifier + "\n"),
	}

	var ex Expected
	ex.ID, ex.Description = c.ID, c.Description
	ex.Issuer, ex.Subject = pub.issuer, subject
	ex.StatementAlg, ex.HashEnvelope, ex.ContentType = c.Alg, c.HashEnv, "application/json"
	ex.StatementIAT = statementIAT.Unix()
	ex.StatementDeterministic = c.Alg == "EdDSA"
	ex.LeafEntry = hex.EncodeToString(entry[:])
	ex.ReceiptLeafEntry = hex.EncodeToString(receiptEntry[:])
	ex.LeafIndex, ex.TreeSize = statementIndex, treeSize
	if proofSize != treeSize {
		ex.ProofTreeSize = proofSize
	}
	ex.Path = hexList(path)
	ex.Root = hex.EncodeToString(root[:])
	ex.TreeEntries = hexList(entries)
	ex.Receipt.Alg, ex.Receipt.Kid, ex.Receipt.VDS = "ES256", string(kid), cose.VDSRFC9162
	ex.Receipt.Issuer, ex.Receipt.Subject, ex.Receipt.IAT = claims.Issuer, claims.Subject, claims.IssuedAt
	ex.Receipt.SignedTreeSize = claims.TreeSize
	ex.Checkpoint.Origin, ex.Checkpoint.TreeSize, ex.Checkpoint.Root = serviceIssuer, treeSize, ex.Root

	if c.Consistency {
		cpath, err := tree.ConsistencyProof(checkpointSize, treeSize)
		if err != nil {
			return nil, err
		}
		cr, err := cose.NewConsistencyReceipt(prot, sig, checkpointSize, treeSize, cpath)
		if err != nil {
			return nil, err
		}
		out["consistency-receipt.cose"] = cr
		ex.Consistency = &ConsistencyExpect{
			TreeSize1: checkpointSize, TreeSize2: treeSize,
			Root1: hex.EncodeToString(root3[:]), Root2: ex.Root,
			Path: hexList(cpath),
		}
	}

	ex.Checks = map[string]bool{"statement_signature": true, "receipt": true, "payload": true}
	ex.Verdict = "VALID"
	if c.Mutation != "" {
		ex.Verdict, ex.FailureCode, ex.FailedCheck = "INVALID", c.FailureCode, c.FailedCheck
		ex.Checks[c.FailedCheck] = false
	}
	j, err := json.MarshalIndent(&ex, "", "  ")
	if err != nil {
		return nil, err
	}
	out["expected.json"] = append(j, '\n')
	return out, nil
}

// ManifestEntry is one row of manifest.json.
type ManifestEntry struct {
	ID          string   `json:"id"`
	Description string   `json:"description"`
	Verdict     string   `json:"verdict"`
	FailureCode string   `json:"failure_code,omitempty"`
	FailedCheck string   `json:"failed_check,omitempty"`
	Files       []string `json:"files"`
}

// Manifest is manifest.json.
type Manifest struct {
	Name      string          `json:"name"`
	Version   string          `json:"version"`
	Generator string          `json:"generator"`
	License   string          `json:"license"`
	VDS       int             `json:"vds"`
	LeafEntry string          `json:"leaf_entry"`
	Verify    string          `json:"verify"`
	Vectors   []ManifestEntry `json:"vectors"`
}

func generate(outDir string) error {
	k, err := newKeys()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	man := Manifest{
		Name:      "charter-testvectors",
		Version:   version,
		Generator: "go run ./testvectors/gen -version " + version + " -out testvectors/" + version + " (github.com/charterlog/charter)",
		License:   "CC0-1.0",
		VDS:       cose.VDSRFC9162,
		LeafEntry: "SHA-256 of the statement re-encoded as 18([protected, {}, payload, signature]) (statement.cose has an empty unprotected header, so this is SHA-256 of statement.cose)",
		Verify:    "verify transparent-statement.cose (statement signature with its x5chain, ignoring validity periods; every receipt with service-keys.cbor) and payload.bin against the statement; compare with expected.json",
	}
	var sums []string
	for _, c := range cases {
		if c.SinceV2 && !signedSize() {
			continue
		}
		fs, err := buildCase(k, c)
		if err != nil {
			return fmt.Errorf("%s: %w", c.ID, err)
		}
		dir := filepath.Join(outDir, c.ID)
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		names := make([]string, 0, len(fs))
		for name := range fs {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			if err := os.WriteFile(filepath.Join(dir, name), fs[name], 0o644); err != nil {
				return err
			}
			sum := sha256.Sum256(fs[name])
			sums = append(sums, fmt.Sprintf("%x  %s/%s", sum, c.ID, name))
		}
		man.Vectors = append(man.Vectors, ManifestEntry{ID: c.ID, Description: c.Description, Verdict: map[bool]string{true: "VALID", false: "INVALID"}[c.Mutation == ""], FailureCode: c.FailureCode, FailedCheck: c.FailedCheck, Files: names})
	}
	mj, err := json.MarshalIndent(&man, "", "  ")
	if err != nil {
		return err
	}
	mj = append(mj, '\n')
	if err := os.WriteFile(filepath.Join(outDir, "manifest.json"), mj, 0o644); err != nil {
		return err
	}
	ms := sha256.Sum256(mj)
	sums = append(sums, fmt.Sprintf("%x  manifest.json", ms))
	sort.Slice(sums, func(i, j int) bool { return sums[i][66:] < sums[j][66:] })
	if len(sums) == 0 {
		return errors.New("no vectors")
	}
	return os.WriteFile(filepath.Join(outDir, "SHA256SUMS"), []byte(strings.Join(sums, "\n")+"\n"), 0o644)
}

// rewrittenTreeSize is the tree_size fail-rewritten-tree-size claims:
// statement index 2 has the same inclusion-proof shape in trees of 7 and
// 8 leaves, so only the signed tree size tells them apart.
const rewrittenTreeSize = 7

// rewriteTreeSize returns receipt with its inclusion proof's tree_size
// replaced, everything else as it was: what anyone can do to the
// unprotected header.
func rewriteTreeSize(receipt []byte, size uint64) ([]byte, error) {
	return cosetest.RewriteProof(receipt, func(_, index uint64) (uint64, uint64) { return size, index })
}
