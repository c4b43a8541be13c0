package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
	"github.com/fxamacker/cbor/v2"
)

// The test binary doubles as a fake charterd when this variable is set, so
// that startDaemon, the phases and stop run against a real process.
const fakeEnv = "CHARTERBENCH_FAKE_CHARTERD"

func TestMain(m *testing.M) {
	if rec := os.Getenv(fakeEnv); rec != "" {
		os.Exit(fakeCharterd(rec, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// fakeCharterd follows the dev-node contract charterbench relies on: it
// writes DIR/service_cert.pem, serves HTTPS with a node certificate issued
// by it, writes DIR/node.url once listening, answers /node/health and
// POST /entries (verifying each statement as the service would), and stops
// on SIGTERM. It appends what happened to the record file.
func fakeCharterd(record string, args []string) int {
	logf := func(format string, a ...any) {
		f, err := os.OpenFile(record, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintf(f, format+"\n", a...)
			f.Close()
		}
	}
	if len(args) > 0 && args[0] == "cluster" {
		return fakeCluster(logf, args[1:])
	}
	if len(args) == 0 || args[0] != "dev" {
		logf("bad args %q", args)
		return 2
	}
	fs := flag.NewFlagSet("fake", flag.ContinueOnError)
	data := fs.String("data", "", "")
	addr := fs.String("addr", "", "")
	fs.String("log-level", "info", "")
	if err := fs.Parse(args[1:]); err != nil || *data == "" || *addr != "127.0.0.1:0" {
		logf("bad flags %q", args)
		return 2
	}
	logf("data %s", *data)
	cert, err := fakeIdentity(*data)
	if err != nil {
		logf("%v", err)
		return 1
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		logf("%v", err)
		return 1
	}
	srv := &http.Server{Handler: fakeMux(nil), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.ServeTLS(ln, "", "")
	if err := os.WriteFile(filepath.Join(*data, "node.url"), []byte("https://"+ln.Addr().String()+"\n"), 0o644); err != nil {
		logf("%v", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	s := <-sig
	logf("stopped by %v", s)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	return 0
}

// fakeIdentity writes DIR/service_cert.pem (a fresh CA) and returns a node
// certificate for 127.0.0.1 issued by it.
func fakeIdentity(dir string) (tls.Certificate, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, err
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	nodeKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now().Add(-time.Hour)
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake service"},
		NotBefore: now, NotAfter: now.Add(2 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caT, caT, caKey.Public(), caKey)
	ca, _ := x509.ParseCertificate(caDER)
	nodeT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "fake node"},
		NotBefore: now, NotAfter: now.Add(2 * time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	nodeDER, _ := x509.CreateCertificate(rand.Reader, nodeT, ca, nodeKey.Public(), caKey)
	if err := os.WriteFile(filepath.Join(dir, "service_cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{nodeDER}, PrivateKey: nodeKey}, nil
}

// fakeMux answers /node/health, POST /entries and POST /entries/batch,
// verifying each statement as the service would; it counts accepted
// statements in posts when that is not nil.
func fakeMux(posts *atomic.Int64) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /node/health", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	mux.HandleFunc("POST /entries", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		st, err := cose.ParseStatement(b, cose.ParseOptions{})
		if err == nil {
			_, err = st.Verify(cose.VerifyOptions{})
		}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if posts != nil {
			posts.Add(1)
		}
		e := st.LeafEntry()
		w.Header().Set("Content-Type", "application/scitt-receipt+cose")
		w.Header().Set("Location", fmt.Sprintf("/entries/%x", e))
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte{0xd2, 0x84})
	})
	mux.HandleFunc("POST /entries/batch", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var stmts [][]byte
		if err := cbor.Unmarshal(b, &stmts); err != nil || len(stmts) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		items := make([]batchItem, len(stmts))
		for i, b := range stmts {
			st, err := cose.ParseStatement(b, cose.ParseOptions{})
			if err == nil {
				_, err = st.Verify(cose.VerifyOptions{})
			}
			if err != nil {
				items[i] = batchItem{Title: "InvalidSignature", Detail: err.Error()}
				continue
			}
			if posts != nil {
				posts.Add(1)
			}
			items[i] = batchItem{EntryID: fmt.Sprintf("%x", st.LeafEntry()), Receipt: []byte{0xd2, 0x84}}
		}
		out, err := cbor.Marshal(items)
		if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/cbor")
		w.Write(out)
	})
	return mux
}

// fakeCluster follows the `charterd cluster` contract charterbench relies
// on: N HTTPS nodes sharing one service certificate in
// DIR/service_cert.pem, their URLs in DIR/nodes.txt once all listen,
// stopped by SIGINT. It records how many registrations each node accepted.
// It writes no nodeN.pid: its nodes are this process.
func fakeCluster(logf func(string, ...any), args []string) int {
	fs := flag.NewFlagSet("fake cluster", flag.ContinueOnError)
	n := fs.Int("nodes", 0, "")
	data := fs.String("data", "", "")
	fs.String("log-level", "info", "")
	if err := fs.Parse(args); err != nil || *data == "" || *n < 2 {
		logf("bad cluster flags %q", args)
		return 2
	}
	logf("cluster %d data %s", *n, *data)
	cert, err := fakeIdentity(*data)
	if err != nil {
		logf("%v", err)
		return 1
	}
	posts := make([]atomic.Int64, *n)
	var urls []string
	var srvs []*http.Server
	for i := range *n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			logf("%v", err)
			return 1
		}
		srv := &http.Server{Handler: fakeMux(&posts[i]), TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
		go srv.ServeTLS(ln, "", "")
		srvs = append(srvs, srv)
		urls = append(urls, "https://"+ln.Addr().String())
	}
	if err := os.WriteFile(filepath.Join(*data, "nodes.txt"), []byte(strings.Join(urls, "\n")+"\n"), 0o644); err != nil {
		logf("%v", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	s := <-sig
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i, srv := range srvs {
		srv.Shutdown(ctx)
		logf("node %d posts %d", i+1, posts[i].Load())
	}
	logf("stopped by %v", s)
	return 0
}

// The whole run against a started process: the node is found through
// node.url and the pinned service certificate, both load phases and the
// verify phase run, the table is printed, and the node is stopped with
// SIGTERM and its directory removed.
func TestRunAgainstStartedNode(t *testing.T) {
	out, _, record := runAgainstFake(t)
	for _, want := range []string{"1 closed, 4 publishers", "2 open at ", "single-core ES256 verifies/s: ", "ratio registrations/s ÷ single-core verifies/s: "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "errors in phase") {
		t.Errorf("the fake node rejected statements:\n%s", out)
	}
	rec, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(rec)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "data ") || lines[1] != "stopped by terminated" {
		t.Fatalf("fake charterd record:\n%s", rec)
	}
	if _, err := os.Stat(strings.TrimPrefix(lines[0], "data ")); !os.IsNotExist(err) {
		t.Errorf("the node's directory was not removed: %v", err)
	}
}

// --warmup loads the started node before phase 1 and reports the warm-up
// apart: its registrations are in no row of the table.
func TestRunWarmsUp(t *testing.T) {
	stdout, stderr, _ := runAgainstFake(t, "--warmup", "300ms")
	m := regexp.MustCompile(`warm-up: ([0-9.]+) registrations/s, 0 failed`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no warm-up line with 0 failed in stderr:\n%s", stderr)
	}
	if rate, _ := strconv.ParseFloat(m[1], 64); rate <= 0 {
		t.Errorf("warm-up registered nothing: %s", m[0])
	}
	if i, j := strings.Index(stderr, "warm-up (not measured)"), strings.Index(stderr, "phase 1: closed loop"); i < 0 || j < i {
		t.Errorf("the warm-up did not run before phase 1:\n%s", stderr)
	}
	if !strings.Contains(stdout, "1 closed, 4 publishers") || strings.Contains(stdout, "warm") {
		t.Errorf("the table should hold phase 1 and 2 only:\n%s", stdout)
	}
}

// runAgainstFake runs charterbench against the fake charterd (this test
// binary) with small settings and the extra flags (a later flag wins),
// fails the test unless it exits 0, and returns its output and the path
// of the fake's record.
func runAgainstFake(t *testing.T, extra ...string) (stdout, stderr, record string) {
	t.Helper()
	record = filepath.Join(t.TempDir(), "record")
	t.Setenv(fakeEnv, record)
	args := append([]string{
		"--charterd", os.Args[0], "--publishers", "4", "--duration", "300ms",
		"--keys", "2", "--payload-bytes", "100", "--presign-rate", "2000", "--verify-time", "100ms",
	}, extra...)
	var out, errOut strings.Builder
	if code := run(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errOut.String())
	}
	return out.String(), errOut.String(), record
}

// A charterd that exits at once is reported with its log, not waited on.
func TestStartedNodeThatExits(t *testing.T) {
	record := filepath.Join(t.TempDir(), "record")
	t.Setenv(fakeEnv, record)
	start := time.Now()
	_, _, _, err := startDaemon(context.Background(), os.Args[0], []string{"--no-such-flag"}, 20*time.Second)
	if err == nil {
		t.Fatal("startDaemon succeeded with a node that exited")
	}
	if !strings.Contains(err.Error(), "exited before writing") {
		t.Errorf("error %q does not say the node exited", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("took %v to notice the exit", time.Since(start))
	}
}

// --url accepts loopback https only; exactly one target is required.
func TestOptions(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--charterd", "x", "--url", "https://127.0.0.1:1", "--cacert", "c"},
		{"--url", "https://127.0.0.1:1"},
		{"--url", "https://example.com", "--cacert", "c"},
		{"--url", "http://127.0.0.1:1", "--cacert", "c"},
		{"--charterd", "x", "--publishers", "0"},
		{"--charterd", "x", "extra"},
		{"--charterd", "x", "--nodes", "0"},
		{"--charterd", "x", "--nodes", "10"},
		{"--url", "https://127.0.0.1:1", "--cacert", "c", "--nodes", "3"},
		{"--url", "https://127.0.0.1:1", "--cacert", "c", "--compare"},
		{"--url", "https://127.0.0.1:1,https://example.com:2", "--cacert", "c"},
		{"--url", "https://127.0.0.1:1,https://127.0.0.1:1/", "--cacert", "c"},
		{"--url", "https://127.0.0.1:1,", "--cacert", "c"},
		{"--url", "https://127.0.0.1:1/entries", "--cacert", "c"},
		{"--charterd", "x", "--warmup", "-1s"},
		{"--charterd", "x", "--policy", "main.go", "--compare-policy", "--rounds", "2", "--warmup", "1s"},
	} {
		if _, err := parseOptions(args, io.Discard); err == nil {
			t.Errorf("parseOptions(%q) accepted", args)
		}
	}
	o, err := parseOptions([]string{"--url", "https://127.0.0.1:8000", "--cacert", "s.pem"}, io.Discard)
	if err != nil || o.publishers != 400 || o.duration != 10*time.Second || o.payloadBytes != 1024 || o.keys != 8 {
		t.Errorf("defaults %+v, %v", o, err)
	}
	if o.nodes != 1 || o.compare || len(o.urls) != 1 || o.urls[0].String() != "https://127.0.0.1:8000" {
		t.Errorf("single --url: nodes %d compare %v urls %v", o.nodes, o.compare, o.urls)
	}
	if o, err := parseOptions([]string{"--charterd", "x", "--compare"}, io.Discard); err != nil || o.nodes != 3 {
		t.Errorf("--compare alone: nodes %d, %v; want 3", o.nodes, err)
	}
	if o, err := parseOptions([]string{"--charterd", "x", "--compare", "--nodes", "5"}, io.Discard); err != nil || o.nodes != 5 {
		t.Errorf("--compare --nodes 5: nodes %d, %v", o.nodes, err)
	}
}

// A comma-separated --url is a network's nodes, in order; publishers are
// pinned to them round-robin.
func TestURLListRoundRobin(t *testing.T) {
	o, err := parseOptions([]string{"--url", " https://127.0.0.1:8001/, https://localhost:8002,https://[::1]:8003", "--cacert", "s.pem"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range o.urls {
		got = append(got, u.String())
	}
	want := []string{"https://127.0.0.1:8001", "https://localhost:8002", "https://[::1]:8003"}
	if !slices.Equal(got, want) {
		t.Fatalf("urls %q, want %q", got, want)
	}
	bases := assign(o.urls, 7)
	for i, b := range bases {
		if b != o.urls[i%3] {
			t.Errorf("publisher %d → %s, want %s", i, b, o.urls[i%3])
		}
	}
	// 400 publishers over 3 nodes: 134, 133, 133.
	count := map[string]int{}
	for _, b := range assign(o.urls, 400) {
		count[b.Host]++
	}
	if count["127.0.0.1:8001"] != 134 || count["localhost:8002"] != 133 || count["[::1]:8003"] != 133 {
		t.Errorf("400 publishers spread %v", count)
	}
	// A POST to a pinned base goes to that node's /entries.
	if got := bases[4].JoinPath("entries").String(); got != "https://localhost:8002/entries" {
		t.Errorf("publisher 4 posts to %s", got)
	}
}

// --compare runs one node, then a cluster: the dev node is stopped with
// SIGTERM before the cluster starts, the cluster with SIGINT, every cluster
// node receives registrations (publishers are spread round-robin), and
// both tables and the ratio are printed.
func TestCompareStartsOneNodeThenCluster(t *testing.T) {
	out, _, record := runAgainstFake(t, "--compare", "--nodes", "3", "--publishers", "6")
	for _, want := range []string{"== one node", "== 3 nodes", "ratio 3-node ÷ one-node registrations/s (phase 1): "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "1 closed, 6 publishers") != 2 {
		t.Errorf("want two tables:\n%s", out)
	}
	rec, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(rec)), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "data ") || lines[1] != "stopped by terminated" ||
		!strings.HasPrefix(lines[2], "cluster 3 data ") || lines[6] != "stopped by interrupt" {
		t.Fatalf("fake charterd record:\n%s", rec)
	}
	for i, l := range lines[3:6] {
		var node, posts int
		if _, err := fmt.Sscanf(l, "node %d posts %d", &node, &posts); err != nil || node != i+1 || posts == 0 {
			t.Errorf("record line %q: want node %d with registrations", l, i+1)
		}
	}
	if _, err := os.Stat(strings.TrimPrefix(lines[2], "cluster 3 data ")); !os.IsNotExist(err) {
		t.Errorf("the cluster's directory was not removed: %v", err)
	}
}

// --batch N against a started node runs phase 2 too: its row is named with
// the batch size, every statement the fake accepted is counted, and the
// count is whole batches (a statement's outcome is its batch's).
func TestRunBatchAgainstStartedNode(t *testing.T) {
	out, stderr, _ := runAgainstFake(t, "--batch", "4")
	if !strings.Contains(out, "1 closed, 4 publishers × 4") {
		t.Errorf("output lacks the batch phase 1 row:\n%s", out)
	}
	if strings.Contains(stderr, "phase 2 skipped") || strings.Contains(out, "errors in phase") {
		t.Fatalf("phase 2 skipped or failed\nstdout:\n%s\nstderr:\n%s", out, stderr)
	}
	var row2 []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "2 open at ") {
			row2 = strings.Fields(l)
		}
	}
	// "2 open at R/s × 4  rate p50 p99 ok errors"
	if len(row2) != 11 || row2[4] != "×" || row2[5] != "4" {
		t.Fatalf("phase 2 row %q, want \"2 open at R/s × 4\" and five figures:\n%s", row2, out)
	}
	var ok, errs int
	if _, err := fmt.Sscanf(row2[9]+" "+row2[10], "%d %d", &ok, &errs); err != nil || ok == 0 || ok%4 != 0 || errs != 0 {
		t.Errorf("phase 2 ok %q errors %q: want whole batches of 4 and no errors (%v)", row2[9], row2[10], err)
	}
	if row2[7] == "-" || row2[8] == "-" {
		t.Errorf("phase 2 reports no latencies: %q", row2)
	}
}
