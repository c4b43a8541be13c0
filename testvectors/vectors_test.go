package testvectors_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/charterlog/charter/client"
	"github.com/charterlog/charter/cose"
	clog "github.com/charterlog/charter/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// versions are the checked-in vector sets. v1 receipts do not bind their
// tree size (Charter before the signed size; they must keep verifying,
// unbound); v2 receipts do.
var versions = []string{"v1", "v2"}

type expected struct {
	ID                     string          `json:"id"`
	Issuer                 string          `json:"issuer"`
	Subject                string          `json:"subject"`
	StatementAlg           string          `json:"statement_alg"`
	HashEnvelope           bool            `json:"hash_envelope"`
	StatementDeterministic bool            `json:"statement_deterministic"`
	LeafEntry              string          `json:"leaf_entry"`
	ReceiptLeafEntry       string          `json:"receipt_leaf_entry"`
	LeafIndex              uint64          `json:"leaf_index"`
	TreeSize               uint64          `json:"tree_size"`
	ProofTreeSize          uint64          `json:"proof_tree_size"`
	Path                   []string        `json:"path"`
	Root                   string          `json:"root"`
	TreeEntries            []string        `json:"tree_entries"`
	Verdict                string          `json:"verdict"`
	FailureCode            string          `json:"failure_code"`
	FailedCheck            string          `json:"failed_check"`
	Checks                 map[string]bool `json:"checks"`
	Receipt                struct {
		Alg     string `json:"alg"`
		Kid     string `json:"kid"`
		VDS     int64  `json:"vds"`
		Issuer  string `json:"iss"`
		Subject string `json:"sub"`
		IAT     int64  `json:"iat"`
		// SignedTreeSize is CWT claim -69162, v2 on.
		SignedTreeSize uint64 `json:"signed_tree_size"`
	} `json:"receipt"`
	Checkpoint struct {
		Origin   string `json:"origin"`
		TreeSize uint64 `json:"tree_size"`
		Root     string `json:"root"`
	} `json:"checkpoint"`
	Consistency *struct {
		TreeSize1 uint64   `json:"tree_size_1"`
		TreeSize2 uint64   `json:"tree_size_2"`
		Root1     string   `json:"root_1"`
		Root2     string   `json:"root_2"`
		Path      []string `json:"path"`
	} `json:"consistency"`
}

type manifest struct {
	Version string `json:"version"`
	Vectors []struct {
		ID          string   `json:"id"`
		Verdict     string   `json:"verdict"`
		FailureCode string   `json:"failure_code"`
		FailedCheck string   `json:"failed_check"`
		Files       []string `json:"files"`
	} `json:"vectors"`
}

// wantCases are the cases the vectors must hold, with the error each
// failure must wrap. The test fails if a case disappears or changes kind.
var wantCases = map[string]error{
	"valid-es256":                  nil,
	"valid-eddsa":                  nil,
	"valid-hash-envelope":          nil,
	"valid-consistency":            nil,
	"fail-tampered-path":           cose.ErrReceiptSignature,
	"fail-wrong-service-key":       cose.ErrUnknownKey,
	"fail-wrong-leaf":              cose.ErrReceiptSignature,
	"fail-bad-statement-signature": cose.ErrBadSignature,
	"fail-payload-mismatch":        cose.ErrPayloadMismatch,
	"fail-rewritten-tree-size":     cose.ErrTreeSizeNotSigned,
}

// sinceV2 are the cases v1 does not have.
var sinceV2 = map[string]bool{"fail-rewritten-tree-size": true}

// casesOf returns the cases version must hold.
func casesOf(version string) map[string]error {
	out := map[string]error{}
	for id, err := range wantCases {
		if version == "v1" && sinceV2[id] {
			continue
		}
		out[id] = err
	}
	return out
}

var failureCodes = map[string]string{
	"fail-tampered-path":           "TAMPERED_INCLUSION_PATH",
	"fail-wrong-service-key":       "UNKNOWN_SERVICE_KEY",
	"fail-wrong-leaf":              "WRONG_LEAF",
	"fail-bad-statement-signature": "BAD_STATEMENT_SIGNATURE",
	"fail-payload-mismatch":        "PAYLOAD_MISMATCH",
	"fail-rewritten-tree-size":     "REWRITTEN_TREE_SIZE",
}

// checkNames maps client.Report check names to expected.json check names.
var checkNames = map[string]string{
	"statement signature": "statement_signature",
	"receipt 1":           "receipt",
	"payload":             "payload",
}

var caseFiles = []string{
	"checkpoint.txt", "expected.json", "note-verifier.txt", "payload.bin", "receipt.cose",
	"service-keys.cbor", "statement.cose", "transparent-statement.cose",
}

func read(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		t.Fatalf("%q is not 32 bytes of hex (%v)", s, err)
	}
	return b
}

func unhexList(t *testing.T, ss []string) [][]byte {
	t.Helper()
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = unhex(t, s)
	}
	return out
}

// mth is RFC 9162 MTH over leaf entries, written out here so that the
// roots are checked independently of log.Tree.
func mth(entries [][]byte) []byte {
	switch n := len(entries); n {
	case 0:
		return rfc6962.DefaultHasher.EmptyRoot()
	case 1:
		return rfc6962.DefaultHasher.HashLeaf(entries[0])
	default:
		k := 1
		for k*2 < n {
			k *= 2
		}
		return rfc6962.DefaultHasher.HashChildren(mth(entries[:k]), mth(entries[k:]))
	}
}

func readManifest(t *testing.T, root string) manifest {
	t.Helper()
	var m manifest
	if err := json.Unmarshal(read(t, root, "manifest.json"), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkVectors checks every case of a vectors directory of the given
// version and its checksums.
func checkVectors(t *testing.T, root, version string) {
	m := readManifest(t, root)
	if m.Version != version {
		t.Errorf("%s: manifest version %q, want %q", root, m.Version, version)
	}
	cases := casesOf(version)
	var ids []string
	for _, v := range m.Vectors {
		ids = append(ids, v.ID)
		want, known := cases[v.ID]
		if !known {
			t.Errorf("manifest lists unknown case %q", v.ID)
			continue
		}
		if (want == nil) != (v.Verdict == "VALID") || failureCodes[v.ID] != v.FailureCode {
			t.Errorf("%s: manifest verdict %s %s", v.ID, v.Verdict, v.FailureCode)
		}
		for _, f := range caseFiles {
			if !slices.Contains(v.Files, f) {
				t.Errorf("%s: manifest does not list %s", v.ID, f)
			}
		}
		t.Run(v.ID, func(t *testing.T) { checkCase(t, filepath.Join(root, v.ID), v.ID, version) })
	}
	for id := range cases {
		if !slices.Contains(ids, id) {
			t.Errorf("case %s is missing from manifest.json", id)
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !slices.Contains(ids, e.Name()) {
			t.Errorf("folder %s is not in manifest.json", e.Name())
		}
	}
	checkSums(t, root)
}

// checkSums requires SHA256SUMS to list every file under root exactly once,
// with its digest.
func checkSums(t *testing.T, root string) {
	t.Helper()
	listed := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(read(t, root, "SHA256SUMS")))
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Errorf("SHA256SUMS line %q", sc.Text())
			continue
		}
		if listed[name] {
			t.Errorf("SHA256SUMS lists %s twice", name)
		}
		listed[name] = true
		got := sha256.Sum256(read(t, root, filepath.FromSlash(name)))
		if hex.EncodeToString(got[:]) != sum {
			t.Errorf("SHA256SUMS: %s has digest %x, listed %s", name, got, sum)
		}
	}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if rel != "SHA256SUMS" && !listed[rel] {
			t.Errorf("SHA256SUMS does not list %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkCase(t *testing.T, dir, id, version string) {
	var ex expected
	if err := json.Unmarshal(read(t, dir, "expected.json"), &ex); err != nil {
		t.Fatal(err)
	}
	if ex.ID != id {
		t.Fatalf("expected.json id %q in folder %s", ex.ID, id)
	}
	wantErr := wantCases[id]
	statement := read(t, dir, "statement.cose")
	payload := read(t, dir, "payload.bin")
	receipt := read(t, dir, "receipt.cose")
	ts := read(t, dir, "transparent-statement.cose")
	ks, err := cose.ParseKeySet(read(t, dir, "service-keys.cbor"))
	if err != nil {
		t.Fatal(err)
	}
	keys := cose.KeySet(ks)

	// The offline verifier's verdict, and which check failed.
	rep, err := client.VerifyTransparentStatement(ts, client.VerifyOptions{
		ServiceKeys:      keys,
		Payload:          payload,
		StatementOptions: cose.VerifyOptions{SkipChainTime: true},
	})
	if (err == nil) != (ex.Verdict == "VALID") || (wantErr == nil) != (ex.Verdict == "VALID") {
		t.Fatalf("verdict %s in expected.json, verifier error %v", ex.Verdict, err)
	}
	if wantErr != nil && !errors.Is(err, wantErr) {
		t.Errorf("error %v does not wrap %v", err, wantErr)
	}
	if ex.FailureCode != failureCodes[id] {
		t.Errorf("failure_code %q, want %q", ex.FailureCode, failureCodes[id])
	}
	got := map[string]bool{}
	for _, c := range rep.Checks {
		name, ok := checkNames[c.Name]
		if !ok {
			t.Errorf("unexpected check %q (%s)", c.Name, c.Detail)
			continue
		}
		if _, dup := got[name]; dup {
			t.Errorf("check %q reported twice", c.Name)
		}
		got[name] = c.OK
		if !c.OK && name != ex.FailedCheck {
			t.Errorf("check %q failed (%s), expected.json says %q fails", c.Name, c.Detail, ex.FailedCheck)
		}
	}
	if len(got) != 3 || len(ex.Checks) != 3 {
		t.Errorf("checks %v, expected.json %v", got, ex.Checks)
	}
	for name, ok := range ex.Checks {
		if g, seen := got[name]; !seen || g != ok {
			t.Errorf("check %s: verifier %v (reported %v), expected.json %v", name, g, seen, ok)
		}
	}
	if ex.Verdict == "INVALID" && ex.Checks[ex.FailedCheck] {
		t.Errorf("failed_check %q is marked passing", ex.FailedCheck)
	}
	if rep.Issuer != ex.Issuer || rep.Subject != ex.Subject {
		t.Errorf("issuer/subject %q %q, expected.json %q %q", rep.Issuer, rep.Subject, ex.Issuer, ex.Subject)
	}

	// The transparent statement is statement.cose plus receipt.cose.
	st0, rs, err := cose.SplitTransparentStatement(ts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(st0, statement) || len(rs) != 1 || !bytes.Equal(rs[0], receipt) {
		t.Error("transparent-statement.cose is not statement.cose with receipt.cose under 394")
	}

	// Leaf entry: SHA-256 of the statement with an empty unprotected header.
	st, err := cose.ParseStatement(statement, cose.ParseOptions{MaxSize: len(statement)})
	if err != nil {
		t.Fatal(err)
	}
	entry := st.LeafEntry()
	fileSum := sha256.Sum256(statement)
	if hex.EncodeToString(entry[:]) != ex.LeafEntry || fileSum != entry {
		t.Errorf("leaf entry %x (file digest %x), expected.json %s", entry, fileSum, ex.LeafEntry)
	}
	if st.HashEnvelope != nil != ex.HashEnvelope {
		t.Errorf("hash envelope %v, expected.json %v", st.HashEnvelope != nil, ex.HashEnvelope)
	}
	if ex.HashEnvelope {
		if d := sha256.Sum256(payload); !bytes.Equal(d[:], st.Payload) {
			t.Error("hash envelope: SHA-256 of payload.bin is not the signed payload")
		}
	}
	if (ex.StatementAlg == "ES256") != (st.Alg == -7) || (ex.StatementAlg == "EdDSA") != (st.Alg == -8) {
		t.Errorf("statement alg %v, expected.json %s", st.Alg, ex.StatementAlg)
	}

	// The receipt's fields.
	r, err := cose.ParseReceipt(receipt)
	if err != nil {
		t.Fatal(err)
	}
	if r.VDS != ex.Receipt.VDS || r.VDS != cose.VDSRFC9162 || r.Alg != -7 || ex.Receipt.Alg != "ES256" ||
		string(r.Kid) != ex.Receipt.Kid || r.Claims.Issuer != ex.Receipt.Issuer || r.Claims.Subject != ex.Receipt.Subject ||
		r.Claims.IssuedAt != ex.Receipt.IAT || r.Claims.TreeSize != ex.Receipt.SignedTreeSize {
		t.Errorf("receipt header vds %d alg %v kid %s claims %+v, expected.json %+v", r.VDS, r.Alg, r.Kid, r.Claims, ex.Receipt)
	}
	if r.Claims.Subject != "charter.checkpoint" {
		t.Errorf("receipt sub %q, charterd uses charter.checkpoint", r.Claims.Subject)
	}
	// v1 receipts do not bind the tree size; from v2 on, the tree's.
	if bound := version != "v1"; bound != (r.Claims.TreeSize != 0) || (bound && r.Claims.TreeSize != ex.TreeSize) {
		t.Errorf("%s: signed tree size %d, tree size %d", version, r.Claims.TreeSize, ex.TreeSize)
	}
	// The proof's tree_size is the tree's, except where the case rewrote it.
	proofSize := ex.TreeSize
	if ex.ProofTreeSize != 0 {
		proofSize = ex.ProofTreeSize
	}
	if (ex.ProofTreeSize != 0) != (id == "fail-rewritten-tree-size") || ex.ProofTreeSize == ex.TreeSize {
		t.Errorf("proof_tree_size %d in %s", ex.ProofTreeSize, id)
	}
	if len(r.Inclusion) != 1 || len(r.Consistency) != 0 {
		t.Fatalf("receipt holds %d inclusion and %d consistency proofs", len(r.Inclusion), len(r.Consistency))
	}
	p := r.Inclusion[0]
	path := unhexList(t, ex.Path)
	if p.TreeSize != proofSize || p.LeafIndex != ex.LeafIndex || !slices.EqualFunc(p.Path, path, bytes.Equal) {
		t.Errorf("receipt proof (%d, %d, %x), expected.json (%d, %d, %s)", p.TreeSize, p.LeafIndex, p.Path, proofSize, ex.LeafIndex, ex.Path)
	}

	// Recompute the tree and the proof with transparency-dev/merkle.
	root := unhex(t, ex.Root)
	entries := unhexList(t, ex.TreeEntries)
	if uint64(len(entries)) != ex.TreeSize || !bytes.Equal(mth(entries), root) {
		t.Errorf("MTH of tree_entries is %x, expected.json root %s", mth(entries), ex.Root)
	}
	receiptEntry := unhex(t, ex.ReceiptLeafEntry)
	if !bytes.Equal(entries[ex.LeafIndex], receiptEntry) {
		t.Errorf("tree_entries[%d] is not receipt_leaf_entry", ex.LeafIndex)
	}
	if (id == "fail-wrong-leaf") == bytes.Equal(receiptEntry, entry[:]) {
		t.Errorf("receipt_leaf_entry %x vs statement entry %x", receiptEntry, entry)
	}
	inclErr := proof.VerifyInclusion(rfc6962.DefaultHasher, p.LeafIndex, p.TreeSize, rfc6962.DefaultHasher.HashLeaf(receiptEntry), p.Path, root)
	if tampered := id == "fail-tampered-path"; tampered == (inclErr == nil) {
		t.Errorf("merkle proof.VerifyInclusion of the receipt's path to root: %v", inclErr)
	}
	// The rewritten tree size is invisible to the Merkle proof alone: only
	// the signed tree size refuses it.
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, p.LeafIndex, p.TreeSize, rfc6962.DefaultHasher.HashLeaf(entry[:]), p.Path, root); (err == nil) != (wantErr == nil || id == "fail-bad-statement-signature" || id == "fail-payload-mismatch" || id == "fail-wrong-service-key" || id == "fail-rewritten-tree-size") {
		t.Errorf("merkle proof.VerifyInclusion of the statement's entry: %v", err)
	}

	// The receipt on its own, for the leaf it was minted for.
	vr, rerr := cose.VerifyInclusion(receipt, receiptEntry, keys)
	switch id {
	case "fail-tampered-path":
		if !errors.Is(rerr, cose.ErrReceiptSignature) {
			t.Errorf("tampered receipt: %v", rerr)
		}
	case "fail-wrong-service-key":
		if !errors.Is(rerr, cose.ErrUnknownKey) {
			t.Errorf("receipt by an unknown key: %v", rerr)
		}
		if _, trusted := keys.Lookup(r.Kid); trusted {
			t.Error("the rogue kid is in service-keys.cbor")
		}
	case "fail-rewritten-tree-size":
		if !errors.Is(rerr, cose.ErrTreeSizeNotSigned) {
			t.Errorf("receipt with a rewritten tree size: %v", rerr)
		}
		// The rewrite is one the Merkle proof alone cannot see: from the
		// rewritten size the path still leads to the signed root.
		got, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, p.LeafIndex, p.TreeSize, rfc6962.DefaultHasher.HashLeaf(receiptEntry), p.Path)
		if err != nil || !bytes.Equal(got, root) {
			t.Errorf("the rewritten proof does not lead to the signed root (%v): not a same-shape rewrite", err)
		}
	default:
		if rerr != nil {
			t.Fatalf("receipt for receipt_leaf_entry: %v", rerr)
		}
		if !bytes.Equal(vr.Root, root) || vr.TreeSize != ex.TreeSize || vr.LeafIndex != ex.LeafIndex || vr.SizeBound != (version != "v1") {
			t.Errorf("verified root %x size %d index %d bound %v, expected.json %s %d %d", vr.Root, vr.TreeSize, vr.LeafIndex, vr.SizeBound, ex.Root, ex.TreeSize, ex.LeafIndex)
		}
	}

	// The signed-note checkpoint names the same tree head.
	v, err := note.NewVerifier(strings.TrimSpace(string(read(t, dir, "note-verifier.txt"))))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := clog.OpenCheckpointNote(read(t, dir, "checkpoint.txt"), v)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Origin != r.Claims.Issuer || cp.Origin != ex.Checkpoint.Origin || cp.Size != ex.TreeSize || cp.Size != ex.Checkpoint.TreeSize ||
		!bytes.Equal(cp.Root[:], root) || ex.Checkpoint.Root != ex.Root {
		t.Errorf("checkpoint %s %d %x, receipt iss %s size %d root %s", cp.Origin, cp.Size, cp.Root, r.Claims.Issuer, ex.TreeSize, ex.Root)
	}
	if id != "fail-tampered-path" {
		got, err := proof.RootFromInclusionProof(rfc6962.DefaultHasher, p.LeafIndex, p.TreeSize, rfc6962.DefaultHasher.HashLeaf(receiptEntry), p.Path)
		if err != nil || !bytes.Equal(got, cp.Root[:]) {
			t.Errorf("root from the receipt's proof %x (%v), checkpoint root %x", got, err, cp.Root)
		}
	}

	if ex.Consistency == nil {
		if id == "valid-consistency" {
			t.Fatal("no consistency section")
		}
		return
	}
	c := ex.Consistency
	cr := read(t, dir, "consistency-receipt.cose")
	root1, root2 := unhex(t, c.Root1), unhex(t, c.Root2)
	if c.TreeSize2 != ex.TreeSize || !bytes.Equal(root2, root) || c.TreeSize1 == 0 || c.TreeSize1 >= c.TreeSize2 ||
		!bytes.Equal(mth(entries[:c.TreeSize1]), root1) {
		t.Errorf("consistency section %+v does not fit the tree", c)
	}
	cvr, err := cose.VerifyConsistency(cr, c.TreeSize1, root1, keys)
	if err != nil {
		t.Fatalf("consistency receipt: %v", err)
	}
	if cvr.SizeBound != (version != "v1") || cvr.TreeSize != c.TreeSize2 {
		t.Errorf("consistency receipt: size %d bound %v", cvr.TreeSize, cvr.SizeBound)
	}
	if !bytes.Equal(cvr.Root, root2) {
		t.Errorf("consistency receipt root %x, expected.json %s", cvr.Root, c.Root2)
	}
	pc, err := cose.ParseReceipt(cr)
	if err != nil || len(pc.Consistency) != 1 {
		t.Fatalf("consistency receipt: %v", err)
	}
	cpath := unhexList(t, c.Path)
	if q := pc.Consistency[0]; q.Size1 != c.TreeSize1 || q.Size2 != c.TreeSize2 || !slices.EqualFunc(q.Path, cpath, bytes.Equal) {
		t.Errorf("consistency proof (%d, %d, %x), expected.json %+v", q.Size1, q.Size2, q.Path, c)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, c.TreeSize1, c.TreeSize2, cpath, root1, root2); err != nil {
		t.Errorf("merkle proof.VerifyConsistency: %v", err)
	}
	bad := bytes.Clone(root1)
	bad[0] ^= 1
	if _, err := cose.VerifyConsistency(cr, c.TreeSize1, bad, keys); err == nil {
		t.Error("consistency receipt verifies from a wrong root_1")
	}
}

func TestVectors(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) { checkVectors(t, v, v) })
	}
}

func goTool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("no go command to run the generator: %v", err)
	}
	return p
}

// TestGeneratorReproducesStructure runs the generator afresh, so that it
// cannot rot: the new output must pass the same checks, and everything
// derived from fixed seeds must equal the checked-in vectors.
func TestGeneratorReproducesStructure(t *testing.T) {
	for _, v := range versions {
		t.Run(v, func(t *testing.T) { testGeneratorReproduces(t, v) })
	}
}

func testGeneratorReproduces(t *testing.T, vectorsDir string) {
	out := filepath.Join(t.TempDir(), vectorsDir)
	cmd := exec.Command(goTool(t), "run", "./gen", "-version", vectorsDir, "-out", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, b)
	}
	checkVectors(t, out, vectorsDir)

	oldM, newM := readManifest(t, vectorsDir), readManifest(t, out)
	if len(oldM.Vectors) != len(newM.Vectors) {
		t.Fatalf("generator makes %d cases, %d are checked in", len(newM.Vectors), len(oldM.Vectors))
	}
	for i, nv := range newM.Vectors {
		ov := oldM.Vectors[i]
		if nv.ID != ov.ID || nv.Verdict != ov.Verdict || nv.FailureCode != ov.FailureCode || nv.FailedCheck != ov.FailedCheck ||
			!slices.Equal(sorted(nv.Files), sorted(ov.Files)) {
			t.Errorf("case %d: generated %+v, checked in %+v", i, nv, ov)
			continue
		}
		var oe, ne expected
		if err := json.Unmarshal(read(t, filepath.Join(vectorsDir, ov.ID), "expected.json"), &oe); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(read(t, filepath.Join(out, nv.ID), "expected.json"), &ne); err != nil {
			t.Fatal(err)
		}
		if oe.Issuer != ne.Issuer || oe.Subject != ne.Subject || oe.Receipt != ne.Receipt ||
			oe.LeafIndex != ne.LeafIndex || oe.TreeSize != ne.TreeSize || oe.StatementDeterministic != ne.StatementDeterministic {
			t.Errorf("%s: fixed-seed fields differ:\nchecked in %+v\ngenerated  %+v", nv.ID, oe, ne)
		}
		// Fillers are fixed; the statement and checkpoint leaves may hold
		// ECDSA signatures.
		for j := range oe.TreeEntries {
			if j != int(oe.LeafIndex) && j != 3 && oe.TreeEntries[j] != ne.TreeEntries[j] {
				t.Errorf("%s: filler leaf %d differs", nv.ID, j)
			}
		}
		same := []string{"service-keys.cbor", "note-verifier.txt", "payload.bin"}
		if oe.StatementDeterministic {
			same = append(same, "statement.cose")
		}
		for _, f := range same {
			if !bytes.Equal(read(t, filepath.Join(vectorsDir, ov.ID), f), read(t, filepath.Join(out, nv.ID), f)) {
				t.Errorf("%s/%s differs from the checked-in file, though it comes from fixed seeds", nv.ID, f)
			}
		}
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	sort.Strings(s)
	return s
}
