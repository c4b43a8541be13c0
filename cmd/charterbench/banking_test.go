package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/govwire"
)

const bankingBundle = "../../samples/banking"

// --app banking: the networks default to 1,3; --nodes takes a list only
// with --app; the registration bench's own flags are refused, not ignored.
func TestAppOptions(t *testing.T) {
	o, err := parseOptions([]string{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle}, io.Discard)
	if err != nil || !slices.Equal(o.nodeList, []int{1, 3}) || o.users != 128 || o.clients != 128 || o.deposit != 1_000_000 {
		t.Errorf("defaults: nodes %v users %d clients %d deposit %d, %v", o.nodeList, o.users, o.clients, o.deposit, err)
	}
	o, err = parseOptions([]string{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--nodes", "3, 1,5", "--users", "2", "--clients", "1", "--duration", "1s"}, io.Discard)
	if err != nil || !slices.Equal(o.nodeList, []int{3, 1, 5}) || o.users != 2 || o.clients != 1 || o.duration != time.Second {
		t.Errorf("--nodes 3,1,5: %v users %d clients %d, %v", o.nodeList, o.users, o.clients, err)
	}
	if o, err := parseOptions([]string{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--nodes", "3"}, io.Discard); err != nil || !slices.Equal(o.nodeList, []int{3}) {
		t.Errorf("--nodes 3: %v, %v", o.nodeList, err)
	}
	// Without --app, a single --nodes is what it was.
	if o, err := parseOptions([]string{"--charterd", "x", "--nodes", "3"}, io.Discard); err != nil || o.nodes != 3 || !slices.Equal(o.nodeList, []int{3}) {
		t.Errorf("--nodes 3 without --app: %d %v, %v", o.nodes, o.nodeList, err)
	}
	for _, args := range [][]string{
		{"--charterd", "x", "--nodes", "1,3"},
		{"--charterd", "x", "--app", "voting", "--bundle", bankingBundle},
		{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--nodes", "1,10"},
		{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--nodes", "1,,3"},
		{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--nodes", "0"},
		{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--users", "1"},
		{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--clients", "0"},
		{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--deposit", "0"},
		{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--deposit", "4294967295"},
		{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--publishers", "10"},
		{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--compare"},
		{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "extra"},
		{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--charterd-debug-addr", "127.0.0.1:0"},
		{"--url", "https://127.0.0.1:1", "--cacert", "c", "--app", "banking", "--bundle", bankingBundle},
		{"--charterd", "x", "--app", "banking", "--bundle", t.TempDir()},
	} {
		if _, err := parseOptions(args, io.Discard); err == nil {
			t.Errorf("parseOptions(%q) accepted", args)
		}
	}
	if _, err := parseOptions([]string{"--charterd", "x", "--app", "banking", "--bundle", bankingBundle, "--nodes", "1", "--charterd-debug-addr", "127.0.0.1:0"}, io.Discard); err != nil {
		t.Errorf("--charterd-debug-addr with one node: %v", err)
	}
}

// A transfer goes to another user, and to each of them.
func TestOtherUser(t *testing.T) {
	r := mrand.New(mrand.NewPCG(1, 2))
	seen := map[int]bool{}
	for range 2000 {
		j := otherUser(r, 2, 5)
		if j == 2 || j < 0 || j >= 5 {
			t.Fatalf("otherUser(2 of 5) = %d", j)
		}
		seen[j] = true
	}
	if len(seen) != 4 {
		t.Errorf("otherUser(2 of 5) reached %v, want 0, 1, 3, 4", seen)
	}
	if j := otherUser(r, 0, 2); j != 1 {
		t.Errorf("otherUser(0 of 2) = %d", j)
	}
}

// Failures are named by status and CCF error code, or the app's own short
// text, with the message as the example.
func TestAppFailure(t *testing.T) {
	js := http.Header{"Content-Type": {"application/json"}}
	for _, c := range []struct {
		status       int
		hdr          http.Header
		body         string
		kind, detail string
	}{
		{503, js, `{"error":{"code":"TransactionConflict","message":"retry"}}`, "503 TransactionConflict", "retry"},
		{400, http.Header{}, "Balance is not enough", "400 Balance is not enough", ""},
		{401, js, `{"error":{"code":"InvalidAuthenticationInfo","message":"no cert"}}`, "401 InvalidAuthenticationInfo", "no cert"},
		{500, http.Header{}, "", "500 Internal Server Error", ""},
		{502, http.Header{}, strings.Repeat("x", 100), "502 Bad Gateway", strings.Repeat("x", 100)},
	} {
		kind, detail := appFailure(c.status, c.hdr, []byte(c.body))
		if kind != c.kind || detail != c.detail {
			t.Errorf("appFailure(%d, %q) = %q, %q; want %q, %q", c.status, c.body, kind, detail, c.kind, c.detail)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	const stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 50 2 25 500 10 0 1 1 0 0\ncpu1 50 3 25 500 10 1 1 2 0 0\nintr 1 2 3\nctxt 9\n"
	busy, cores, ok := parseProcStat(stat)
	// user+nice+system+irq+softirq+steal = 100+5+50+1+2+3 ticks.
	if !ok || cores != 2 || busy != 161*10*time.Millisecond {
		t.Errorf("parseProcStat = %v, %d, %v", busy, cores, ok)
	}
	if _, _, ok := parseProcStat("intr 1\n"); ok {
		t.Error("parseProcStat without a cpu line succeeded")
	}
}

// The report gives each network's row, its CPU, errors by kind and the
// balance check, conserved or not.
func TestBankingReport(t *testing.T) {
	o := options{users: 4, clients: 8, duration: 2 * time.Second, deposit: 100}
	var one, three result
	for i := range 100 {
		one.add(outcome{ok: true, latency: time.Duration(i+1) * time.Millisecond})
	}
	one.add(outcome{failure: "503 TransactionConflict", detail: "reads changed"})
	one.elapsed = 2 * time.Second
	var part result
	part.add(outcome{ok: true, latency: time.Millisecond})
	three.merge(&part)
	three.elapsed = time.Second
	results := []bankingResult{
		{label: "one node", nodes: 1, r: one, sum: 400, want: 400, checked: 4,
			cpu: cpuUse{known: true, charterd: time.Second, bench: 100 * time.Millisecond, machine: 1500 * time.Millisecond, cores: 2, wall: 2 * time.Second}},
		{label: "3 nodes", nodes: 3, r: three, sum: 399, want: 400, checked: 4},
	}
	var b strings.Builder
	bankingReport(&b, o, results)
	out := b.String()
	for _, want := range []string{
		"transfers of 1 between 4 users, 8 clients",
		"more clients than users",
		"one node           50.0    50.00ms    99.00ms       100        1        10000µs",
		"3 nodes             1.0     1.00ms     1.00ms         1        0              -",
		"machine busy 0.75 of 2, charterd 0.50, charterbench 0.05, other processes 0.20",
		"CPU per transfer: charterd 10000µs, charterbench 1000µs",
		"503 TransactionConflict                  1",
		"e.g. reads changed",
		"money conserved: yes: the 4 balances sum to 400 after the load, as before it",
		"money conserved: NO: the 4 balances sum to 399 after the load, 400 before it",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if results[0].conserved() != true || results[1].conserved() != false {
		t.Error("conserved() is wrong")
	}
}

// fakeBank is a network serving the banking app, in this process: member0
// governance (signatures checked) that deploys the app and adds users, and
// /app/account, /app/deposit, /app/transfer and /app/balance authenticated
// by TLS client certificate, as the node does. Every conflictEvery-th
// transfer is refused as a conflict the node gave up on.
type fakeBank struct {
	t             *testing.T
	member        *x509.Certificate
	conflictEvery int

	mu        sync.Mutex
	deployed  bool
	users     map[string]bool
	balances  map[string]uint64 // user id → current_account
	transfers map[string]int    // by caller
	seen      int
}

func (f *fakeBank) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/node/health" {
		io.WriteString(w, `{"status":"ok"}`)
		return
	}
	if strings.HasPrefix(r.URL.Path, "/gov/") {
		f.gov(w, r)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	caller := ""
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
		caller = hex.EncodeToString(sum[:])
	}
	isMember := caller == govwire.MemberIDOf(f.member)
	refuse := func(status int, code string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"code":%q,"message":"fake"}}`, code)
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/app/"), "/")
	switch {
	case !f.deployed:
		refuse(404, "ResourceNotFound")
	case r.Method == "PUT" && parts[0] == "account" && len(parts) == 3 && parts[2] == bankingAccount:
		if !isMember {
			refuse(401, "InvalidAuthenticationInfo")
			return
		}
		if !f.users[parts[1]] {
			http.Error(w, "User doesn't exist", 404)
			return
		}
		if _, ok := f.balances[parts[1]]; !ok {
			f.balances[parts[1]] = 0
		}
		w.WriteHeader(204)
	case r.Method == "POST" && parts[0] == "deposit" && len(parts) == 3:
		var b struct{ Value uint64 }
		if !isMember || json.NewDecoder(r.Body).Decode(&b) != nil {
			refuse(400, "InvalidInput")
			return
		}
		f.balances[parts[1]] += b.Value
		w.WriteHeader(204)
	case r.Method == "POST" && parts[0] == "transfer" && len(parts) == 2 && parts[1] == bankingAccount:
		var b struct {
			Value         uint64 `json:"value"`
			UserIDTo      string `json:"user_id_to"`
			AccountNameTo string `json:"account_name_to"`
		}
		if !f.users[caller] {
			refuse(401, "InvalidAuthenticationInfo")
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&b); err != nil || b.Value != 1 || b.UserIDTo == caller || !f.users[b.UserIDTo] || b.AccountNameTo != bankingAccount {
			f.t.Errorf("transfer by %s…: %+v, %v", caller[:8], b, err)
			http.Error(w, "bad transfer", 400)
			return
		}
		f.seen++
		if f.conflictEvery > 0 && f.seen%f.conflictEvery == 0 {
			refuse(503, "TransactionConflict")
			return
		}
		f.balances[caller] -= b.Value
		f.balances[b.UserIDTo] += b.Value
		f.transfers[caller]++
		w.WriteHeader(204)
	case r.Method == "GET" && parts[0] == "balance" && len(parts) == 2:
		bal, ok := f.balances[caller]
		if !f.users[caller] || !ok {
			http.Error(w, "Account doesn't exist", 404)
			return
		}
		json.NewEncoder(w).Encode(map[string]uint64{"balance": bal})
	default:
		refuse(404, "ResourceNotFound")
	}
}

func (f *fakeBank) gov(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req, err := govwire.ParseRequest(body)
	if err == nil {
		err = req.Verify(f.member)
	}
	if err != nil {
		f.t.Errorf("%s %s: %v", r.Method, r.URL.Path, err)
		w.WriteHeader(400)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.URL.Path == "/gov/members/proposals:create":
		p, err := req.Proposal()
		if err != nil {
			f.t.Error(err)
			return
		}
		for _, a := range p.Actions {
			switch a.Name {
			case "set_js_app":
				var args struct {
					Bundle struct {
						Metadata json.RawMessage
						Modules  []struct{ Name string }
					}
				}
				if err := json.Unmarshal(a.Args, &args); err != nil || len(args.Bundle.Modules) == 0 || args.Bundle.Metadata == nil {
					f.t.Errorf("set_js_app args: %v", err)
				}
				f.deployed = true
			case "set_user":
				var args struct{ Cert string }
				blk, _ := pem.Decode([]byte(func() string { _ = json.Unmarshal(a.Args, &args); return args.Cert }()))
				if blk == nil {
					f.t.Errorf("set_user args %s", a.Args)
					continue
				}
				sum := sha256.Sum256(blk.Bytes)
				f.users[hex.EncodeToString(sum[:])] = true
			default:
				f.t.Errorf("unexpected action %s", a.Name)
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"proposalId": fmt.Sprintf("%064x", len(f.users)), "proposalState": "Open"})
	case strings.HasSuffix(r.URL.Path, "/ballots/"+govwire.MemberIDOf(f.member)+":submit"):
		json.NewEncoder(w).Encode(map[string]any{"proposalId": req.ProposalID, "proposalState": "Accepted"})
	default:
		f.t.Errorf("unexpected %s %s", r.Method, r.URL.Path)
		w.WriteHeader(404)
	}
}

// Setup, load and check against an in-process two-node fake: the app and
// every user go through governance as member0, the accounts are opened by
// the member, every user transfers with its own certificate on both
// nodes, refused transfers are counted by kind, and the balances add up.
func TestRunBankingAgainstFake(t *testing.T) {
	dir := t.TempDir()
	f := &fakeBank{t: t, member: writeMember(t, dir), conflictEvery: 7,
		users: map[string]bool{}, balances: map[string]uint64{}, transfers: map[string]int{}}
	var urls []*url.URL
	roots := x509.NewCertPool()
	for range 2 {
		srv := httptest.NewUnstartedServer(f)
		srv.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
		srv.StartTLS()
		defer srv.Close()
		u, _ := url.Parse(srv.URL)
		urls = append(urls, u)
		roots.AddCert(srv.Certificate())
	}
	mem, err := loadMember(dir)
	if err != nil {
		t.Fatal(err)
	}
	users, err := newBenchUsers(4)
	if err != nil {
		t.Fatal(err)
	}
	o := options{users: 4, clients: 6, duration: 300 * time.Millisecond, maxWait: 10 * time.Second, deposit: 1000}
	var stderr strings.Builder
	res, err := runBanking(context.Background(), o, urls, roots, mem, []byte(`{"bundle":{"metadata":{},"modules":[{"name":"m.js","module":""}]}}`), users, nil, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if res.r.ok == 0 || !res.conserved() || res.checked != 4 || res.sum != 4000 || res.want != 4000 {
		t.Fatalf("ok %d, sum %d of %d balances (want 4000 as before: %d), %q", res.r.ok, res.sum, res.checked, res.want, res.checkErr)
	}
	if len(res.r.failures) != 1 || res.r.failures["503 TransactionConflict"] == 0 {
		t.Errorf("failures %v, want only 503 TransactionConflict", res.r.failures)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.users) != 4 || len(f.transfers) != 4 {
		t.Errorf("governance added %d users, %d users transferred; want 4 and 4", len(f.users), len(f.transfers))
	}
	n := 0
	for _, c := range f.transfers {
		n += c
	}
	if n != res.r.ok {
		t.Errorf("the fake applied %d transfers, the bench counted %d", n, res.r.ok)
	}
	var b strings.Builder
	bankingReport(&b, o, []bankingResult{res})
	if !strings.Contains(b.String(), "money conserved: yes") || strings.Contains(b.String(), "note:") {
		t.Errorf("report:\n%s", b.String())
	}
}
