package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/charterlog/charter/internal/devpki"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/fxamacker/cbor/v2"
	gocose "github.com/veraison/go-cose"
)

// Paths set by TestMain.
var (
	repoRoot   string // the module root
	binDir     string // holds the built charterd and charter
	charterd   string
	charterCLI string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := findRepoRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "charter-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binDir = dir
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	charterd = filepath.Join(dir, "charterd")
	charterCLI = filepath.Join(dir, "charter")
	return m.Run()
}

// findRepoRoot is the directory of `go env GOMOD`, or ../.. from here.
func findRepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err == nil {
		if gomod := strings.TrimSpace(string(out)); gomod != "" && gomod != os.DevNull {
			return filepath.Dir(gomod), nil
		}
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("cannot find the module root: %v", err)
	}
	return root, nil
}

// build compiles the node (under -race when this test binary is) and the
// CLI into dir.
func build(dir string) error {
	run := func(args ...string) error {
		cmd := exec.Command("go", args...)
		cmd.Dir = repoRoot
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return nil
	}
	if raceEnabled {
		if err := run("build", "-race", "-o", dir+string(filepath.Separator), "./cmd/charterd"); err != nil {
			return err
		}
		return run("build", "-o", dir+string(filepath.Separator), "./cmd/charter")
	}
	return run("build", "-o", dir+string(filepath.Separator), "./cmd/charterd", "./cmd/charter")
}

// node is a charterd process serving a data directory.
type node struct {
	t        testing.TB
	Dir      string
	URL      string
	CertPath string // DIR/service_cert.pem
	Cmd      *exec.Cmd
	Client   *http.Client

	done    chan struct{} // closed when the process has exited
	waitErr error
	logFile *os.File
}

// startNode runs `charterd dev` on dir (created if missing) on a free
// loopback port and waits until it serves as leader.
func startNode(t testing.TB, dir string, extraArgs ...string) *node {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"dev", "--data", dir, "--addr", "127.0.0.1:0", "--log-level", "debug"}, extraArgs...)
	n := runCharterd(t, dir, filepath.Join(dir, "charterd.log"), args...)
	// Serving is not yet leading: wait for /node/health to say 200.
	n.waitFor(t, "healthy", func() bool {
		resp, err := n.Client.Get(n.URL + "/node/health")
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return n
}

// runCharterd starts charterd with args for the data directory dataDir,
// logging to logPath, and waits until it writes dataDir/node.url. The
// process is killed at the end of the test, and its log is checked for
// data races and shown if the test failed.
func runCharterd(t testing.TB, dataDir, logPath string, args ...string) *node {
	t.Helper()
	// A previous run's node.url would make us connect to a dead port.
	if err := os.Remove(filepath.Join(dataDir, "node.url")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(lf, "=== e2e: start %s\n", time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(charterd, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	// No 1 s race-detector pause at exit; a race still exits 66 and is
	// reported in the log, which the cleanup checks.
	cmd.Env = append(os.Environ(), "GORACE=atexit_sleep_ms=0")
	if err := cmd.Start(); err != nil {
		lf.Close()
		t.Fatal(err)
	}
	n := &node{t: t, Dir: dataDir, CertPath: filepath.Join(dataDir, "service_cert.pem"), Cmd: cmd, done: make(chan struct{}), logFile: lf}
	go func() {
		n.waitErr = cmd.Wait()
		close(n.done)
	}()
	t.Cleanup(func() {
		if n.running() {
			_ = n.Cmd.Process.Kill()
			<-n.done
		}
		if b, err := os.ReadFile(logPath); err == nil && bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			t.Errorf("charterd reported a data race; see %s", logPath)
		}
		if t.Failed() {
			t.Logf("last lines of %s:\n%s", logPath, tailFile(logPath, 40))
		}
		n.logFile.Close()
	})
	n.waitFor(t, "serving (node.url)", func() bool {
		b, err := os.ReadFile(filepath.Join(dataDir, "node.url"))
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			return false
		}
		n.URL = strings.TrimSpace(string(b))
		return true
	})
	n.Client = pinnedClient(t, n.CertPath)
	return n
}

// pollEvery is how often eventually checks its condition.
const pollEvery = 20 * time.Millisecond

// eventually polls cond until it returns nil, failing the test with what and
// cond's last error if within passes first. It is how these tests wait for
// something to happen; a time.Sleep elsewhere is part of a scenario (pacing
// a load, holding an outage, letting time pass to show that something does
// not happen) or a client's back-off or poll interval, and says so.
func eventually(t testing.TB, within time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, within, err)
		}
		time.Sleep(pollEvery)
	}
}

// errNotYet is what a condition without more to say fails with.
var errNotYet = errors.New("not yet")

// waitUntil is eventually for a condition that holds or not.
func waitUntil(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	eventually(t, within, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}

// waitFor polls ready for up to 20 s, failing the test if the process
// exits first or the time runs out.
func (n *node) waitFor(t testing.TB, what string, ready func() bool) {
	t.Helper()
	waitUntil(t, 20*time.Second, fmt.Sprintf("charterd in %s %s", n.Dir, what), func() bool {
		if ready() {
			return true
		}
		if !n.running() {
			t.Fatalf("charterd exited before %s: %v", what, n.waitErr)
		}
		return false
	})
}

func (n *node) running() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits up to 15 s for a clean exit.
func (n *node) Stop() {
	n.t.Helper()
	if !n.running() {
		n.t.Fatalf("charterd already exited: %v", n.waitErr)
	}
	if err := n.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		n.t.Fatal(err)
	}
	select {
	case <-n.done:
		if n.waitErr != nil {
			n.t.Errorf("charterd exited with %v after SIGTERM, want status 0", n.waitErr)
		}
	case <-time.After(15 * time.Second):
		_ = n.Cmd.Process.Kill()
		<-n.done
		n.t.Fatal("charterd did not stop within 15s of SIGTERM")
	}
}

// Kill9 kills the node with SIGKILL and waits for it.
func (n *node) Kill9() {
	n.t.Helper()
	_ = n.Cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-n.done:
	case <-time.After(15 * time.Second):
		n.t.Fatal("charterd did not die within 15s of SIGKILL")
	}
}

func tailFile(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var all []string
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		// A node answering 5xx under load logs each answer; they would
		// hide the lines that say why.
		if !strings.Contains(l, `"msg":"request failed"`) {
			all = append(all, l)
		}
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// pinnedClient trusts only the service certificate and never follows
// redirects (the tests look at 302 and 303 themselves).
func pinnedClient(t testing.TB, certPath string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", certPath)
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: 32,
		ForceAttemptHTTP2:   true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// response is a fully read HTTP response.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (n *node) do(method, path, contentType string, body []byte, hdr ...string) (*response, error) {
	return n.doWithin(15*time.Second, method, path, contentType, body, hdr...)
}

// doWithin is do with its own bound on the whole request.
func (n *node) doWithin(within time.Duration, method, path, contentType string, body []byte, hdr ...string) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := n.Client
	if within > client.Timeout && client.Timeout != 0 {
		// The client's own bound would cut the request first.
		c := *client
		c.Timeout = within
		client = &c
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// get is do(GET) that fails the test on a transport error.
func (n *node) get(t testing.TB, path string, hdr ...string) *response {
	t.Helper()
	r, err := n.do(http.MethodGet, path, "", nil, hdr...)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return r
}

// registration is what a successful registration returned.
type registration struct {
	Statement []byte
	ID        string // hex leaf entry
	Location  string
	TxID      string // X-Charter-Transaction-Id; empty after a 303
	Receipt   []byte
	LeafIndex uint64
}

// register POSTs stmt and, after a 303, polls the Location until the receipt
// is there (bounded by 20 s). It returns an error for anything else.
func (n *node) register(stmt []byte) (*registration, error) {
	r, err := n.do(http.MethodPost, "/entries", "application/cose", stmt)
	if err != nil {
		return nil, err
	}
	reg := &registration{Statement: stmt, ID: entryID(stmt), Location: r.Header.Get("Location")}
	switch r.Status {
	case http.StatusCreated:
		reg.TxID = r.Header.Get("X-Charter-Transaction-Id")
		reg.Receipt = r.Body
	case http.StatusSeeOther:
		deadline := time.Now().Add(20 * time.Second)
		for {
			// A client's poll interval (charter register's), not a wait:
			// the GET below is the condition.
			time.Sleep(50 * time.Millisecond)
			g, err := n.do(http.MethodGet, reg.Location, "", nil)
			if err != nil {
				return nil, err
			}
			if g.Status == http.StatusOK {
				reg.Receipt = g.Body
				break
			}
			if g.Status != http.StatusFound {
				return nil, fmt.Errorf("GET %s after 303: %d %s", reg.Location, g.Status, describeProblem(g))
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("GET %s: still 302 after 20s", reg.Location)
			}
		}
	default:
		return nil, &statusError{Status: r.Status, Detail: describeProblem(r)}
	}
	if want := "/entries/" + reg.ID; reg.Location != want {
		return nil, fmt.Errorf("Location %q, want %q", reg.Location, want)
	}
	rc, err := cose.ParseReceipt(reg.Receipt)
	if err != nil {
		return nil, fmt.Errorf("receipt for %s: %v", reg.ID, err)
	}
	if len(rc.Inclusion) != 1 {
		return nil, fmt.Errorf("receipt for %s has %d inclusion proofs", reg.ID, len(rc.Inclusion))
	}
	reg.LeafIndex = rc.Inclusion[0].LeafIndex
	return reg, nil
}

type statusError struct {
	Status int
	Detail string
}

func (e *statusError) Error() string { return fmt.Sprintf("status %d: %s", e.Status, e.Detail) }

// mustRegister is register that fails the test on error.
func (n *node) mustRegister(t testing.TB, stmt []byte) *registration {
	t.Helper()
	reg, err := n.register(stmt)
	if err != nil {
		t.Fatalf("registering: %v", err)
	}
	return reg
}

// problem is a decoded concise problem details body.
type problem struct {
	Title, Detail string
}

func decodeProblem(b []byte) (problem, error) {
	var m map[int64]any
	if err := cbor.Unmarshal(b, &m); err != nil {
		return problem{}, err
	}
	var p problem
	p.Title, _ = m[-1].(string)
	p.Detail, _ = m[-2].(string)
	return p, nil
}

func describeProblem(r *response) string {
	ct := r.Header.Get("Content-Type")
	if ct != "application/concise-problem-details+cbor" {
		if strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "application/json") {
			return fmt.Sprintf("%s %q", ct, truncate(r.Body, 200))
		}
		return fmt.Sprintf("%s, %d bytes", ct, len(r.Body))
	}
	p, err := decodeProblem(r.Body)
	if err != nil {
		return "undecodable problem: " + err.Error()
	}
	return p.Title + ": " + p.Detail
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// entryID is the SCRAPI entry id of a signed statement.
func entryID(stmt []byte) string {
	s, err := cose.ParseStatement(stmt, cose.ParseOptions{})
	if err != nil {
		return "unparsable:" + err.Error()
	}
	e := s.LeafEntry()
	return hex.EncodeToString(e[:])
}

// health is GET /node/health.
type health struct {
	Status         string `json:"status"`
	Leader         bool   `json:"leader"`
	View           uint64 `json:"view"`
	LedgerSize     uint64 `json:"ledger_size"`
	CheckpointSize uint64 `json:"checkpoint_size"`
}

func (n *node) health(t testing.TB) health {
	t.Helper()
	r := n.get(t, "/node/health")
	if r.Status != http.StatusOK {
		t.Fatalf("/node/health: %d %s", r.Status, r.Body)
	}
	var h health
	if err := json.Unmarshal(r.Body, &h); err != nil {
		t.Fatalf("/node/health: %v: %s", err, r.Body)
	}
	return h
}

// waitIdle waits (≤10 s) until two /node/health reads 200 ms apart agree,
// i.e. no checkpoint is still on its way.
func (n *node) waitIdle(t testing.TB) health {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	prev := n.health(t)
	for {
		// Still is two reads this far apart agreeing: the interval is the
		// condition's definition.
		time.Sleep(200 * time.Millisecond)
		h := n.health(t)
		if h == prev {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledger still moving after 10s: %+v then %+v", prev, h)
		}
		prev = h
	}
}

// keys fetches and parses /.well-known/scitt-keys.
func (n *node) keys(t testing.TB) cose.KeySet {
	t.Helper()
	r := n.get(t, "/.well-known/scitt-keys")
	if r.Status != http.StatusOK {
		t.Fatalf("/.well-known/scitt-keys: %d %s", r.Status, describeProblem(r))
	}
	ks, err := cose.ParseKeySet(r.Body)
	if err != nil {
		t.Fatalf("/.well-known/scitt-keys: %v", err)
	}
	if len(ks) == 0 {
		t.Fatal("/.well-known/scitt-keys: no keys")
	}
	return ks
}

// checkpoint is a parsed C2SP checkpoint note body.
type checkpoint struct {
	Note   []byte
	Origin string
	Size   uint64
	Root   []byte
}

func parseCheckpoint(note []byte) (checkpoint, error) {
	cp := checkpoint{Note: note}
	body, _, ok := bytes.Cut(note, []byte("\n\n"))
	if !ok {
		return cp, fmt.Errorf("checkpoint has no blank line before its signatures: %q", note)
	}
	lines := strings.Split(string(body), "\n")
	if len(lines) < 3 {
		return cp, fmt.Errorf("checkpoint body has %d lines, want ≥ 3: %q", len(lines), body)
	}
	cp.Origin = lines[0]
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return cp, fmt.Errorf("checkpoint size %q: %v", lines[1], err)
	}
	cp.Size = size
	root, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(root) != 32 {
		return cp, fmt.Errorf("checkpoint root %q: %v (%d bytes)", lines[2], err, len(root))
	}
	cp.Root = root
	return cp, nil
}

func (n *node) checkpoint(t testing.TB) checkpoint {
	t.Helper()
	r := n.get(t, "/checkpoint")
	if r.Status != http.StatusOK {
		t.Fatalf("/checkpoint: %d %s", r.Status, describeProblem(r))
	}
	cp, err := parseCheckpoint(r.Body)
	if err != nil {
		t.Fatalf("/checkpoint: %v", err)
	}
	return cp
}

// publisher is an ES256 signing identity shaped like `charter keygen`'s:
// a P-256 leaf signed by a self-signed CA, and the did:x509 naming them.
type publisher struct {
	key     *ecdsa.PrivateKey
	caKey   *ecdsa.PrivateKey
	chain   [][]byte // leaf, CA (DER)
	issuer  string
	counter atomic.Uint64
	nonce   string
}

func newPublisher(t testing.TB, cn string) *publisher {
	t.Helper()
	p, err := makePublisher(cn, elliptic.P256())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func makePublisher(cn string, curve elliptic.Curve) (*publisher, error) {
	caKey, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		return nil, err
	}
	leafKey, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		return nil, err
	}
	c, err := devpki.New(cn, leafKey, caKey, time.Now().Add(-time.Hour), 25*time.Hour, 25*time.Hour)
	if err != nil {
		return nil, err
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	return &publisher{key: leafKey, caKey: caKey, chain: c.DER(), issuer: c.Issuer, nonce: hex.EncodeToString(nonce[:])}, nil
}

// sign signs payload with the default options; extra adjusts them.
func (p *publisher) sign(t testing.TB, payload []byte, extra ...func(*cose.SignOptions)) []byte {
	t.Helper()
	b, err := p.trySign(payload, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *publisher) trySign(payload []byte, extra ...func(*cose.SignOptions)) ([]byte, error) {
	opts := cose.SignOptions{
		Alg:         gocose.AlgorithmES256,
		Issuer:      p.issuer,
		Subject:     "pkg:e2e/item",
		ContentType: "application/octet-stream",
		X5Chain:     p.chain,
	}
	if p.key.Curve == elliptic.P384() {
		opts.Alg = gocose.AlgorithmES384
	}
	for _, f := range extra {
		f(&opts)
	}
	return cose.SignStatement(rand.Reader, p.key, opts, payload)
}

// unique signs a statement no other call (in this or any run) makes.
func (p *publisher) unique(t testing.TB) []byte {
	t.Helper()
	b, err := p.tryUnique()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (p *publisher) tryUnique() ([]byte, error) {
	i := p.counter.Add(1)
	return p.trySign([]byte(fmt.Sprintf(`{"run":%q,"item":%d}`, p.nonce, i)))
}

// signRaw builds a tagged COSE_Sign1 with an arbitrary protected header,
// signed ES256 with key: for statements SignStatement refuses to make.
func signRaw(t testing.TB, key *ecdsa.PrivateKey, protected map[int64]any, payload []byte) []byte {
	t.Helper()
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	ph, err := em.Marshal(protected)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 9052 §4.4: Sig_structure = ["Signature1", protected, external_aad, payload].
	tbs, err := em.Marshal([]any{"Signature1", ph, []byte{}, payload})
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(tbs)
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	out, err := em.Marshal(cbor.Tag{Number: 18, Content: []any{ph, map[int64]any{}, payload, sig}})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runCLI runs the built charter CLI in dir; it returns stdout+stderr.
func runCLI(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, charterCLI, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// lines splits s into lines for messages.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}
