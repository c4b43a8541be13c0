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
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charterlog/charter/cose"
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
	if err := os.MkdirAll(*data, 0o700); err != nil {
		logf("%v", err)
		return 1
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
	if err := os.WriteFile(filepath.Join(*data, "service_cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		logf("%v", err)
		return 1
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		logf("%v", err)
		return 1
	}
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
		e := st.LeafEntry()
		w.Header().Set("Content-Type", "application/scitt-receipt+cose")
		w.Header().Set("Location", fmt.Sprintf("/entries/%x", e))
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte{0xd2, 0x84})
	})
	srv := &http.Server{Handler: mux, TLSConfig: &tls.Config{Certificates: []tls.Certificate{{
		Certificate: [][]byte{nodeDER}, PrivateKey: nodeKey}}}}
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

// The whole run against a started process: the node is found through
// node.url and the pinned service certificate, both load phases and the
// verify phase run, the table is printed, and the node is stopped with
// SIGTERM and its directory removed.
func TestRunAgainstStartedNode(t *testing.T) {
	record := filepath.Join(t.TempDir(), "record")
	t.Setenv(fakeEnv, record)
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{
		"--charterd", os.Args[0], "--publishers", "4", "--duration", "300ms",
		"--keys", "2", "--payload-bytes", "100", "--presign-rate", "2000", "--verify-time", "100ms",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
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
	} {
		if _, err := parseOptions(args, io.Discard); err == nil {
			t.Errorf("parseOptions(%q) accepted", args)
		}
	}
	o, err := parseOptions([]string{"--url", "https://127.0.0.1:8000", "--cacert", "s.pem"}, io.Discard)
	if err != nil || o.publishers != 400 || o.duration != 10*time.Second || o.payloadBytes != 1024 || o.keys != 8 {
		t.Errorf("defaults %+v, %v", o, err)
	}
}
