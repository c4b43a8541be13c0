package registry_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/charterlog/charter/internal/ledger"
	clog "github.com/charterlog/charter/log"
	"github.com/charterlog/charter/registry"
	"github.com/go-chi/chi/v5"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// fakeLedger implements registry.Ledger in memory over a real log.Tree, and
// signs real checkpoints, so that receipts from the handlers verify.
//
// It fails in the ways the real ledger does, each settable:
//   - registerErr: Register refuses without persisting (overloaded, not
//     leader, dropped);
//   - blockRegister: Register blocks until the request's context ends;
//   - waitErr: Register persists, then WaitCovered fails ("registered, but
//     the wait errored");
//   - manualCheckpoints: WaitCovered blocks until checkpoint() covers the
//     transaction or the context ends.
type fakeLedger struct {
	t    testing.TB
	key  crypto.Signer
	keys cose.KeySet
	nk   noteKeys

	mu                sync.Mutex
	registerErr       error
	blockRegister     bool
	waitErr           error
	manualCheckpoints bool
	registerCalls     int
	registerManyCalls int
	registered        [][]byte // statements Register persisted, in order

	tree    *clog.Tree
	hashes  map[int64]tlog.Hash
	view    uint64
	records map[uint64]*clog.Record
	entries map[[32]byte]uint64
	pending map[[32]byte]bool
	cps     map[uint64]*clog.Checkpoint // by tree size
	cpSizes []uint64                    // ascending
	covered chan struct{}               // closed and replaced at each checkpoint
	issuer  string
}

var _ registry.Ledger = (*fakeLedger)(nil)

type noteKeys struct {
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

const testIssuer = "charter.test/log"

func newFakeLedger(t testing.TB) *fakeLedger {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k, err := cose.NewKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	skey, vkey, err := note.GenerateKey(rand.Reader, testIssuer)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	nv, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLedger{
		t: t, key: key, keys: cose.KeySet{k}, nk: noteKeys{ns, nv, vkey},
		hashes: map[int64]tlog.Hash{}, view: 2,
		records: map[uint64]*clog.Record{}, entries: map[[32]byte]uint64{}, pending: map[[32]byte]bool{},
		cps: map[uint64]*clog.Checkpoint{}, covered: make(chan struct{}), issuer: testIssuer,
	}
	f.tree = clog.NewTree(0, tlog.HashReaderFunc(f.readHashes))
	return f
}

func (f *fakeLedger) readHashes(ix []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(ix))
	for i, x := range ix {
		h, ok := f.hashes[x]
		if !ok {
			return nil, fmt.Errorf("fake: no hash %d", x)
		}
		out[i] = h
	}
	return out, nil
}

func (f *fakeLedger) set(fn func(f *fakeLedger)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeLedger) calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.registerCalls
}

func (f *fakeLedger) Register(ctx context.Context, entry [32]byte, statement []byte, _ [32]byte) (clog.TxID, error) {
	f.mu.Lock()
	f.registerCalls++
	f.pending[entry] = true
	if f.blockRegister {
		f.mu.Unlock()
		<-ctx.Done()
		return clog.TxID{}, ctx.Err()
	}
	defer f.mu.Unlock()
	if f.registerErr != nil {
		delete(f.pending, entry)
		return clog.TxID{}, f.registerErr
	}
	if seq, ok := f.entries[entry]; ok {
		delete(f.pending, entry)
		return clog.TxID{View: f.records[seq].View, Seqno: seq}, nil
	}
	seq := uint64(f.tree.Size()) + 1
	if _, err := f.tree.Append(entry, func(i int64, h tlog.Hash) { f.hashes[i] = h }); err != nil {
		return clog.TxID{}, err
	}
	f.tree.Committed()
	f.records[seq] = &clog.Record{Type: clog.TxRegistration, View: f.view, Seqno: seq, Entry: entry, Body: bytes.Clone(statement)}
	f.entries[entry] = seq
	delete(f.pending, entry)
	f.registered = append(f.registered, bytes.Clone(statement))
	if !f.manualCheckpoints {
		f.checkpointLocked()
	}
	return clog.TxID{View: f.view, Seqno: seq}, nil
}

// RegisterMany registers each as Register does, counting the calls: a
// batch is one.
func (f *fakeLedger) RegisterMany(ctx context.Context, regs []ledger.Registration) ([]clog.TxID, []error) {
	f.mu.Lock()
	f.registerManyCalls++
	f.mu.Unlock()
	txids := make([]clog.TxID, len(regs))
	errs := make([]error, len(regs))
	for i, r := range regs {
		txids[i], errs[i] = f.Register(ctx, r.Entry, r.Statement, r.Policy)
	}
	return txids, errs
}

// checkpoint signs the tree as it is, covering every registration so far.
func (f *fakeLedger) checkpoint() *clog.Checkpoint {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.checkpointLocked()
}

func (f *fakeLedger) checkpointLocked() *clog.Checkpoint {
	size := uint64(f.tree.Size())
	if cp, ok := f.cps[size]; ok {
		return cp
	}
	root, err := f.tree.Root(int64(size))
	if err != nil {
		f.t.Fatal(err)
	}
	kid := f.keys[0].Kid
	iat := time.Now().Unix()
	prot, sig, err := cose.SignTreeHead(rand.Reader, f.key, f.keys[0].Alg, kid, cose.ReceiptClaims{Issuer: f.issuer, IssuedAt: iat}, root[:])
	if err != nil {
		f.t.Fatal(err)
	}
	nt, err := clog.SignCheckpointNote(f.issuer, size, root, f.nk.signer)
	if err != nil {
		f.t.Fatal(err)
	}
	cp := &clog.Checkpoint{TreeSize: size, Root: root, IssuedAt: iat, Protected: prot, Signature: sig, Note: nt}
	f.cps[size] = cp
	f.cpSizes = append(f.cpSizes, size)
	close(f.covered)
	f.covered = make(chan struct{})
	return cp
}

func (f *fakeLedger) Pending(entry [32]byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending[entry]
}

func (f *fakeLedger) LookupEntry(entry [32]byte) (clog.TxID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	seq, ok := f.entries[entry]
	if !ok {
		return clog.TxID{}, ledger.ErrNotFound
	}
	return clog.TxID{View: f.records[seq].View, Seqno: seq}, nil
}

func (f *fakeLedger) coveringLocked(seqno uint64) *clog.Checkpoint {
	for _, s := range f.cpSizes {
		if s >= seqno {
			return f.cps[s]
		}
	}
	return nil
}

func (f *fakeLedger) WaitCovered(ctx context.Context, seqno uint64) error {
	for {
		f.mu.Lock()
		if f.waitErr != nil {
			err := f.waitErr
			f.mu.Unlock()
			return err
		}
		if f.coveringLocked(seqno) != nil {
			f.mu.Unlock()
			return nil
		}
		ch := f.covered
		f.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *fakeLedger) Proof(seqno uint64) (*ledger.Inclusion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.records[seqno]; !ok {
		return nil, ledger.ErrNotFound
	}
	cp := f.coveringLocked(seqno)
	if cp == nil {
		return nil, ledger.ErrNotCovered
	}
	path, err := f.tree.InclusionProof(int64(cp.TreeSize), int64(seqno-1))
	if err != nil {
		return nil, err
	}
	return &ledger.Inclusion{Seqno: seqno, Checkpoint: cp, LeafIndex: seqno - 1, Path: path}, nil
}

func (f *fakeLedger) Inclusion(seqno uint64) (*ledger.Inclusion, error) {
	inc, err := f.Proof(seqno)
	if err != nil {
		return nil, err
	}
	inc.Record, err = f.Record(seqno)
	return inc, err
}

func (f *fakeLedger) Record(seqno uint64) (*clog.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.records[seqno]
	if !ok {
		return nil, ledger.ErrNotFound
	}
	return r, nil
}

func (f *fakeLedger) ReadTile(t tlog.Tile) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tree.ReadTile(t)
}

func (f *fakeLedger) LeafEntries(start uint64, n int) ([][32]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][32]byte, n)
	for i := range out {
		r, ok := f.records[start+uint64(i)+1]
		if !ok {
			return nil, fmt.Errorf("fake: no record %d", start+uint64(i)+1)
		}
		out[i] = r.Entry
	}
	return out, nil
}

func (f *fakeLedger) LatestCheckpoint() (*clog.Checkpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.cpSizes) == 0 {
		return nil, ledger.ErrNotFound
	}
	return f.cps[f.cpSizes[len(f.cpSizes)-1]], nil
}

func (f *fakeLedger) Consistency(size1, size2 uint64) (*clog.Checkpoint, [][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cp, ok := f.cps[size2]
	if !ok {
		return nil, nil, ledger.ErrNotFound
	}
	p, err := f.tree.ConsistencyProof(int64(size1), int64(size2))
	if err != nil {
		return nil, nil, err
	}
	return cp, p, nil
}

// rootAt is the tree root of size n, for consistency checks.
func (f *fakeLedger) rootAt(n uint64) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.tree.Root(int64(n))
	if err != nil {
		f.t.Fatal(err)
	}
	return r[:]
}

// env is one service over a fake ledger, served by a chi router.
type env struct {
	t      testing.TB
	ledger *fakeLedger
	svc    *registry.Service
	router chi.Router
}

func newEnv(t testing.TB, edit func(*registry.Service)) *env {
	t.Helper()
	f := newFakeLedger(t)
	svc := &registry.Service{
		Ledger: f, Keys: f.keys, Issuer: testIssuer, NoteVerifierKey: f.nk.vkey,
		Policy: registry.Policy{MaxStatementBytes: 1 << 20},
		Wait:   2 * time.Second,
	}
	if edit != nil {
		edit(svc)
	}
	r := chi.NewRouter()
	svc.Routes(r)
	return &env{t: t, ledger: f, svc: svc, router: r}
}

func (e *env) do(method, path, contentType string, body []byte, hdr ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	e.router.ServeHTTP(w, req)
	return w
}

func (e *env) post(body []byte) *httptest.ResponseRecorder {
	return e.do(http.MethodPost, "/entries", registry.ContentTypeCOSE, body)
}

func (e *env) get(path string, hdr ...string) *httptest.ResponseRecorder {
	return e.do(http.MethodGet, path, "", nil, hdr...)
}

// issuerChain is a statement issuer: an ES256 leaf under a self-signed CA,
// valid around now, and its did:x509.
type issuerChain struct {
	key   *ecdsa.PrivateKey
	certs []*x509.Certificate
	der   [][]byte
	did   string
}

func newIssuer(t testing.TB, cn string) *issuerChain {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nb, na := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn + " root"},
		NotBefore: nb, NotAfter: na, IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: nb, NotAfter: na, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(leafDER)
	certs := []*x509.Certificate{leaf, ca}
	did, err := cose.NewDIDX509(certs, 1, "subject:CN:"+cn)
	if err != nil {
		t.Fatal(err)
	}
	return &issuerChain{key: key, certs: certs, der: [][]byte{leafDER, caDER}, did: did}
}

func (c *issuerChain) sign(t testing.TB, payload string) []byte {
	t.Helper()
	b, err := cose.SignStatement(rand.Reader, c.key, cose.SignOptions{
		Issuer: c.did, Subject: "urn:charter:test", ContentType: "text/plain", X5Chain: c.der,
	}, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// leafEntry parses a statement the handlers accepted and returns its entry.
func leafEntry(t testing.TB, stmt []byte) [32]byte {
	t.Helper()
	s, err := cose.ParseStatement(stmt, cose.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.LeafEntry()
}

// decodeProblem decodes a problem-details body strictly: CBOR map with a
// text title at -1 and optional text detail at -2, nothing else.
func decodeProblem(t testing.TB, w *httptest.ResponseRecorder) (title, detail string) {
	t.Helper()
	if ct := w.Header().Get("Content-Type"); ct != registry.ContentTypeProblem {
		t.Fatalf("status %d: Content-Type %q, want %q; body %q", w.Code, ct, registry.ContentTypeProblem, w.Body.Bytes())
	}
	var m map[int]string
	if err := cose.Unmarshal(w.Body.Bytes(), &m); err != nil {
		t.Fatalf("status %d: problem body %x does not decode as {int: text}: %v", w.Code, w.Body.Bytes(), err)
	}
	for k := range m {
		if k != -1 && k != -2 {
			t.Fatalf("problem body has key %d", k)
		}
	}
	if m[-1] == "" {
		t.Fatalf("problem body %x has no title", w.Body.Bytes())
	}
	return m[-1], m[-2]
}

var errSecret = errors.New("pebble: /var/lib/charter/000123.sst: checksum mismatch (secret internals)")

// ReadBarrier implements registry.Ledger: the fake is one replica that is
// always current.
func (f *fakeLedger) ReadBarrier(ctx context.Context) error { return ctx.Err() }
