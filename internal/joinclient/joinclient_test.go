package joinclient_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/attest"
	"github.com/charterlog/charter/internal/identity"
	"github.com/charterlog/charter/internal/join"
	"github.com/charterlog/charter/internal/joinclient"
	"github.com/charterlog/charter/internal/seal"
)

// network is a service's identity (what the leader holds) and a joining
// node's data directory holding the service certificate, as an operator
// prepares it.
type network struct {
	svc     *identity.Identity
	dir     string
	key     *ecdsa.PrivateKey
	ev      *attest.Evidence
	sealer  *seal.Sealer
	joiner  *joinclient.Joiner
	nodeID  uint64
	answers atomic.Int32
}

func newNetwork(t *testing.T) *network {
	t.Helper()
	sealer := testSealer(t)
	svc, err := identity.LoadOrCreate(t.TempDir(), "join.example", true, sealer)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, identity.FileServiceCert), svc.ServiceCertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ev, err := attest.NewVirtualProvider(make([]byte, 48), nil).Evidence(context.Background(), &key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	j, err := joinclient.New(dir, sealer, "https://127.0.0.1:1", key, ev)
	if err != nil {
		t.Fatal(err)
	}
	j.Retry = 5 * time.Millisecond
	return &network{svc: svc, dir: dir, key: key, ev: ev, sealer: sealer, joiner: j, nodeID: 7}
}

func testSealer(t *testing.T) *seal.Sealer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "seal.key")
	if err := seal.GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	s, err := seal.FileKey(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// admit is the leader's answer to n's key: its certificate, and the
// sealed secrets when release is set.
func (n *network) admit(t *testing.T, key *ecdsa.PublicKey, release bool) join.Response {
	t.Helper()
	der, err := identity.IssueNodeCert(n.svc, key, n.nodeID, "", false)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	jr := join.Response{NodeID: n.nodeID, Status: join.NodePending, NodeCert: string(cert), NoteVerifier: n.svc.NoteVerifier}
	if release {
		der, err := x509.MarshalPKCS8PrivateKey(n.svc.ServiceKey)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := attest.MarshalEvidence(n.ev)
		jr.Sealed, err = join.SealSecrets(&join.Released{ServiceKey: der, NoteKey: n.svc.NoteSignerKey(), LedgerSecret: n.svc.LedgerSecret},
			key, n.nodeID, sha256.Sum256(raw))
		if err != nil {
			t.Fatal(err)
		}
		jr.Status = join.NodeTrusted
	}
	return jr
}

// serve answers join.Path with answer(i) for the i-th request (from 0),
// after checking the request is the node's.
func (n *network) serve(t *testing.T, answer func(i int32, w http.ResponseWriter)) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != join.Path {
			http.Error(w, "wrong route "+r.Method+" "+r.URL.Path, http.StatusNotFound)
			return
		}
		body, _ := io.ReadAll(r.Body)
		if _, pub, _, err := join.ParseRequest(body); err != nil || !pub.Equal(&n.key.PublicKey) {
			http.Error(w, "not the node's request", http.StatusBadRequest)
			return
		}
		answer(n.answers.Add(1)-1, w)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// testCtx bounds a test's asking: Join retries every answer that is
// not a refusal, so a wrong answer must fail the test, not hang it.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// TestJoinRetriesUntilAdmitted: 503 and 429 are waited out; the admission
// leaves the node certificate and note verifier key in the data directory,
// and no secrets while the node is not trusted.
func TestJoinRetriesUntilAdmitted(t *testing.T) {
	n := newNetwork(t)
	jr := n.admit(t, &n.key.PublicKey, false)
	srv := n.serve(t, func(i int32, w http.ResponseWriter) {
		switch i {
		case 0:
			http.Error(w, "no leader", http.StatusServiceUnavailable)
		case 1:
			http.Error(w, "slow down", http.StatusTooManyRequests)
		default:
			writeJSON(w, jr)
		}
	})
	id, err := n.joiner.Join(testCtx(t), srv.Client(), srv.URL)
	if err != nil || id != n.nodeID {
		t.Fatalf("Join: %d, %v", id, err)
	}
	if got := n.answers.Load(); got != 3 {
		t.Fatalf("%d requests, want 3 (two waited out)", got)
	}
	if b, err := os.ReadFile(filepath.Join(n.dir, identity.FileNodeCert)); err != nil || string(b) != jr.NodeCert {
		t.Fatalf("node certificate kept: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(n.dir, identity.FileNoteVerifier)); err != nil || strings.TrimSpace(string(b)) != jr.NoteVerifier {
		t.Fatalf("note verifier kept: %q, %v", b, err)
	}
	if identity.HoldsSealed(n.dir) {
		t.Fatal("secrets kept for a node that was not released any")
	}
}

// TestJoinRefused: a refusal is final (no retry) and keeps nothing.
func TestJoinRefused(t *testing.T) {
	n := newNetwork(t)
	srv := n.serve(t, func(_ int32, w http.ResponseWriter) {
		http.Error(w, "measurement not approved", http.StatusForbidden)
	})
	_, err := n.joiner.Join(testCtx(t), srv.Client(), srv.URL)
	if !errors.Is(err, joinclient.ErrRefused) || !strings.Contains(err.Error(), "measurement not approved") {
		t.Fatalf("Join: %v, want ErrRefused with the server's detail", err)
	}
	if got := n.answers.Load(); got != 1 {
		t.Fatalf("%d requests after a refusal, want 1", got)
	}
	if _, err := os.Stat(filepath.Join(n.dir, identity.FileNodeCert)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused join kept a node certificate: %v", err)
	}
}

// TestAskRefusesAForeignAnswer: a certificate for another key, a bad note
// verifier key or a missing node id is not kept.
func TestAskRefusesAForeignAnswer(t *testing.T) {
	n := newNetwork(t)
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	foreign := n.admit(t, &other.PublicKey, false)
	badNote := n.admit(t, &n.key.PublicKey, false)
	badNote.NoteVerifier = "not a key"
	noID := n.admit(t, &n.key.PublicKey, false)
	noID.NodeID = 0
	for name, jr := range map[string]join.Response{"another key's certificate": foreign, "a bad note verifier": badNote, "no node id": noID} {
		t.Run(name, func(t *testing.T) {
			srv := n.serve(t, func(_ int32, w http.ResponseWriter) { writeJSON(w, jr) })
			if _, err := n.joiner.Ask(testCtx(t), srv.Client(), srv.URL); err == nil {
				t.Fatal("accepted")
			}
			if _, err := os.Stat(filepath.Join(n.dir, identity.FileNodeCert)); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("kept a node certificate: %v", err)
			}
		})
	}
}

// TestAwaitSecrets: the node asks the leader until it is trusted, then
// keeps the released secrets sealed, and a restart loads the full
// identity from them.
func TestAwaitSecrets(t *testing.T) {
	n := newNetwork(t)
	pending, trusted := n.admit(t, &n.key.PublicKey, false), n.admit(t, &n.key.PublicKey, true)
	srv := n.serve(t, func(i int32, w http.ResponseWriter) {
		if i < 2 {
			writeJSON(w, pending)
			return
		}
		writeJSON(w, trusted)
	})
	leaderless := true
	leader := func() (string, *http.Client, bool) {
		if leaderless { // the first ask finds no leader
			leaderless = false
			return "", nil, false
		}
		return srv.URL, srv.Client(), true
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.joiner.AwaitSecrets(ctx, leader, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	if got := n.answers.Load(); got != 3 {
		t.Fatalf("%d asks, want 3", got)
	}
	id, err := identity.LoadOrCreate(n.dir, "", false, n.sealer)
	if err != nil || !id.HasSecrets() || !id.ServiceKey.Equal(n.svc.ServiceKey) || string(id.LedgerSecret) != string(n.svc.LedgerSecret) {
		t.Fatalf("the identity after release: %v", err)
	}
}

// TestAwaitSecretsRefusesAnotherService: secrets whose service key is not
// the pinned service certificate's are not kept.
func TestAwaitSecretsRefusesAnotherService(t *testing.T) {
	n := newNetwork(t)
	impostor := newNetwork(t)
	impostor.key, impostor.ev = n.key, n.ev
	jr := impostor.admit(t, &n.key.PublicKey, true)
	srv := n.serve(t, func(_ int32, w http.ResponseWriter) { writeJSON(w, jr) })
	_, err := n.joiner.Ask(testCtx(t), srv.Client(), srv.URL)
	if err == nil || !strings.Contains(err.Error(), "does not match the service certificate") {
		t.Fatalf("Ask: %v", err)
	}
	if identity.HoldsSealed(n.dir) {
		t.Fatal("kept another service's secrets")
	}
}

// TestPinnedClient trusts the service certificate in the data directory
// and no other; without one it says where to put it.
func TestPinnedClient(t *testing.T) {
	if _, err := joinclient.PinnedClient(t.TempDir()); err == nil || !strings.Contains(err.Error(), "GET /node/network") {
		t.Fatalf("no service certificate: %v", err)
	}
	n := newNetwork(t)
	c, err := joinclient.PinnedClient(n.dir)
	if err != nil {
		t.Fatal(err)
	}
	// httptest's server certificate is not under the service's.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	if _, err := n.joiner.Ask(testCtx(t), c, srv.URL); err == nil || errors.Is(err, joinclient.ErrRefused) {
		t.Fatalf("a server outside the service was believed: %v", err)
	}
}
