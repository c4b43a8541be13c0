package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	stdlog "log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/internal/httpapi"
	"github.com/charterlog/charter/internal/ledger"
	"github.com/charterlog/charter/internal/ledgertest"
	"github.com/charterlog/charter/log"
	"github.com/go-chi/chi/v5"
)

// keyFiles writes a fresh P-256 key and self-signed certificate to dir
// and returns their paths and the certificate.
func keyFiles(t *testing.T, dir, name string) (keyFile, certFile string, cert *x509.Certificate) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ = x509.ParseCertificate(der)
	kb, _ := x509.MarshalPKCS8PrivateKey(k)
	keyFile, certFile = filepath.Join(dir, name+"_privk.pem"), filepath.Join(dir, name+"_cert.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyFile, certFile, cert
}

// govNet is a one-node ledger with governance served over TLS, and one
// active member whose files are in dir.
type govNet struct {
	l                     *ledger.Ledger
	url, cacert, dir      string
	memberKey, memberCert string
	flags                 []string
}

func startGov(t *testing.T) *govNet {
	t.Helper()
	l := ledgertest.Start(t, t.TempDir(), ledger.Config{CheckpointInterval: 5 * time.Millisecond}).Ledger
	ctx := context.Background()
	if _, err := l.SubmitWrites(ctx, &log.WriteSet{Writes: []log.Write{{Map: "public:test.genesis", Key: []byte("g"), Value: []byte("g")}}}); err != nil {
		t.Fatal(err)
	}
	n := &govNet{l: l, dir: t.TempDir()}
	n.memberKey, n.memberCert, _ = keyFiles(t, n.dir, "member0")
	certPEM, _ := os.ReadFile(n.memberCert)
	if _, err := gov.Bootstrap(ctx, l, gov.Genesis{Members: []gov.MemberSpec{{CertPEM: string(certPEM), Active: true}}, Open: true}, gov.Config{}); err != nil {
		t.Fatal(err)
	}
	router := chi.NewRouter()
	httpapi.GovRoutes(router, gov.NewService(l, gov.Config{}, nil), nil)
	srv := httptest.NewTLSServer(router)
	t.Cleanup(srv.Close)
	n.url, n.cacert = srv.URL, filepath.Join(n.dir, "service_cert.pem")
	if err := os.WriteFile(n.cacert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	n.flags = []string{"--url", n.url, "--cacert", n.cacert, "--member-key", n.memberKey, "--member-cert", n.memberCert}
	return n
}

func (n *govNet) kv(m, k string) string {
	v, err := n.l.GetKV(m, []byte(k))
	if err != nil {
		return ""
	}
	return string(v)
}

// charter runs the CLI and returns its exit code, stdout and stderr.
func charter(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestUserAddRemove(t *testing.T) {
	n := startGov(t)
	_, userCert, cert := keyFiles(t, n.dir, "user0")
	id := govwire.MemberIDOf(cert)

	code, out, errs := charter(append([]string{"user", "add", "--cert", userCert, "--data", `{"isAdmin": true}`}, n.flags...)...)
	if code != 0 || !strings.Contains(out, "user "+id+"\n") || !strings.Contains(out, " Accepted\n") {
		t.Fatalf("user add: %d\n%s%s", code, out, errs)
	}
	pemText, _ := os.ReadFile(userCert)
	if n.kv(govwire.MapUserCerts, id) != string(pemText) || n.kv(govwire.MapUserInfo, id) != `{"user_data":{"isAdmin":true}}` {
		t.Fatalf("after user add: cert %q info %q", n.kv(govwire.MapUserCerts, id), n.kv(govwire.MapUserInfo, id))
	}
	code, out, errs = charter(append([]string{"user", "remove", "--id", id}, n.flags...)...)
	if code != 0 || !strings.Contains(out, " Accepted\n") || n.kv(govwire.MapUserCerts, id) != "" {
		t.Fatalf("user remove: %d\n%s%s", code, out, errs)
	}
}

func TestAppDeploy(t *testing.T) {
	n := startGov(t)
	bundle := `{"metadata": {"endpoints": {"/hi": {"get": {"js_module": "hi.js", "js_function": "hi",
		"forwarding_required": "never", "mode": "readonly", "authn_policies": ["no_auth"]}}}},
		"modules": [{"name": "hi.js", "module": "export function hi() { return {body: 'hi'} }"}]}`
	bundleFile := filepath.Join(n.dir, "bundle.json")
	os.WriteFile(bundleFile, []byte(bundle), 0o644)
	code, out, errs := charter(append([]string{"app", "deploy", "--bundle", bundleFile}, n.flags...)...)
	if code != 0 || !strings.Contains(out, " Accepted\n") {
		t.Fatalf("app deploy: %d\n%s%s", code, out, errs)
	}
	var stored map[string]any
	if err := json.Unmarshal([]byte(n.kv(govwire.MapAppBundle, govwire.KeyAppBundle)), &stored); err != nil || stored["modules"] == nil {
		t.Fatalf("stored bundle %v, %v", stored, err)
	}

	// The samples' set_js_app.json, with disable_bytecode_cache.
	proposal := `{"actions": [{"name": "set_js_app", "args": {"bundle": ` + bundle + `, "disable_bytecode_cache": true}}]}`
	propFile := filepath.Join(n.dir, "set_js_app.json")
	os.WriteFile(propFile, []byte(proposal), 0o644)
	code, out, errs = charter(append([]string{"app", "deploy", "--bundle", propFile}, n.flags...)...)
	if code != 0 || n.kv(govwire.MapAppBundle, govwire.KeyDisableBytecodeCache) != "true" {
		t.Fatalf("app deploy set_js_app.json: %d\n%s%s", code, out, errs)
	}

	// A bundle the constitution refuses: the CLI says why.
	bad := strings.Replace(bundle, `"readonly"`, `"sometimes"`, 1)
	os.WriteFile(bundleFile, []byte(bad), 0o644)
	code, _, errs = charter(append([]string{"app", "deploy", "--bundle", bundleFile}, n.flags...)...)
	if code != 1 || !strings.Contains(errs, "ProposalFailedToValidate") || !strings.Contains(errs, "mode must be one of readwrite, readonly, historical") {
		t.Fatalf("refused bundle: %d %s", code, errs)
	}
}

func TestAppCLIErrors(t *testing.T) {
	dir := t.TempDir()
	notBundle := filepath.Join(dir, "x.json")
	os.WriteFile(notBundle, []byte(`{"name": "x"}`), 0o644)
	twoActions := filepath.Join(dir, "p.json")
	os.WriteFile(twoActions, []byte(`{"actions": [{"name": "set_user", "args": {}}]}`), 0o644)
	_, cert, _ := keyFiles(t, dir, "u")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"app", "deploy", "--url", "https://x"}, 2, "--bundle is required"},
		{[]string{"app", "deploy", "--bundle", dir, "--url", "https://x"}, 1, "no app.json (looked at the root and in src/endpoints)"},
		{[]string{"app", "deploy", "--bundle", notBundle}, 1, `is neither a bundle {"metadata", "modules"} nor a set_js_app proposal`},
		{[]string{"app", "deploy", "--bundle", twoActions}, 1, "is a proposal, but not one set_js_app action with args"},
		{[]string{"app", "deploy", "--bundle", filepath.Join(dir, "missing.json")}, 1, "no such file or directory"},
		{[]string{"user", "add", "--url", "https://x"}, 2, "--cert is required"},
		{[]string{"user", "add", "--cert", cert, "--data", "{", "--url", "https://x"}, 2, "--data is not valid JSON"},
		{[]string{"user", "add", "--cert", cert, "--url", "https://x"}, 2, "--member-key and --member-cert are required"},
		{[]string{"user", "remove", "--cert", cert, "--id", strings.Repeat("a", 64)}, 2, "give the user as --cert or --id, one of them"},
		{[]string{"user", "remove", "--id", "AB"}, 2, `--id "AB" is not a user id`},
		{[]string{"app", "call", "GET"}, 2, "want METHOD and PATH"},
		{[]string{"app", "call", "GET", "/x"}, 2, "--url is required"},
		{[]string{"app", "call", "GET", "/x", "--url", "https://x", "--user-key", "k.pem"}, 2, "give --user-key and --user-cert together"},
		{[]string{"app", "call", "GET", "/x", "--header", "nocolon"}, 2, "want NAME:VALUE"},
	} {
		code, _, errs := charter(c.args...)
		if code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, %s\n\twant exit %d with %q", c.args, code, errs, c.code, c.want)
		}
	}
}

func TestAppCall(t *testing.T) {
	dir := t.TempDir()
	userKey, userCert, cert := keyFiles(t, dir, "user0")
	var got struct {
		method, path, ctype, extra string
		body                       []byte
		peer                       string
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.method, got.path, got.ctype, got.extra = r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("X-Extra")
		got.body, _ = io.ReadAll(r.Body)
		got.peer = ""
		if len(r.TLS.PeerCertificates) > 0 {
			got.peer = govwire.MemberIDOf(r.TLS.PeerCertificates[0])
		}
		w.Header().Set("x-ms-ccf-transaction-id", "2.42")
		if r.URL.Path == "/app/missing" {
			w.WriteHeader(http.StatusNotFound)
		}
		io.WriteString(w, `{"ok":true}`)
	}))
	// As the node will: ask for any client certificate, verify none.
	srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0) // the pinning case fails a handshake on purpose
	srv.StartTLS()
	defer srv.Close()
	cacert := filepath.Join(dir, "service_cert.pem")
	os.WriteFile(cacert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	dataFile := filepath.Join(dir, "body.json")
	os.WriteFile(dataFile, []byte(`{"amount": 5}`), 0o644)

	code, out, errs := charter("app", "call", "post", "account/alice", "--url", srv.URL, "--service-cert", cacert,
		"--user-key", userKey, "--user-cert", userCert, "--data", "@"+dataFile, "--header", "X-Extra: yes")
	if code != 0 || out != "HTTP 200 OK\nx-ms-ccf-transaction-id: 2.42\n\n{\"ok\":true}" {
		t.Fatalf("app call: %d %q %s", code, out, errs)
	}
	if got.method != "POST" || got.path != "/app/account/alice" || got.ctype != "application/json" || got.extra != "yes" ||
		string(got.body) != `{"amount": 5}` || got.peer != govwire.MemberIDOf(cert) {
		t.Fatalf("server saw %+v", got)
	}
	// Without a client certificate, and a failing status: printed, exit 1.
	code, out, errs = charter("app", "call", "GET", "/app/missing", "--url", srv.URL, "--cacert", cacert)
	if code != 1 || !strings.HasPrefix(out, "HTTP 404 Not Found\n") || got.peer != "" || !strings.Contains(errs, "GET /app/missing: HTTP 404") {
		t.Fatalf("failing call: %d %q %s (peer %q)", code, out, errs, got.peer)
	}
	// The service certificate is pinned: another one fails the handshake.
	_, _, other := keyFiles(t, dir, "other")
	os.WriteFile(cacert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: other.Raw}), 0o644)
	if code, _, errs := charter("app", "call", "GET", "/x", "--url", srv.URL, "--cacert", cacert); code != 1 || !strings.Contains(errs, "certificate") {
		t.Fatalf("unpinned service: %d %s", code, errs)
	}
}

// A folder with app.json and src/ is built into the bundle CCF's
// build_bundle.js would make.
func TestReadBundleBuildsAFolder(t *testing.T) {
	args, err := readBundle(filepath.Join("..", "..", "samples", "banking"))
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Bundle struct {
			Metadata struct{ Endpoints map[string]any }
			Modules  []struct{ Name, Module string }
		}
	}
	if err := json.Unmarshal(args, &a); err != nil {
		t.Fatal(err)
	}
	if len(a.Bundle.Modules) == 0 || a.Bundle.Modules[0].Name != "endpoints/banking.js" || a.Bundle.Metadata.Endpoints["/transfer/{account_name}"] == nil {
		t.Fatalf("built bundle: %d modules, endpoints %v", len(a.Bundle.Modules), a.Bundle.Metadata.Endpoints)
	}
}
