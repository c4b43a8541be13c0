package main

// --app banking measures the JS app path instead of registrations: the
// samples/banking app (a port of CCF's banking-app sample), served under
// /app, each request run in a fresh interpreter on the leader and committed
// as one transaction.
//
// For each network of --nodes (1,3 by default), in one run:
//
//	setup    member0 (read from the started network's data directory, as
//	         --policy does) proposes set_js_app with the bundle built from
//	         --bundle and set_user for --users fresh users (ECDSA P-256
//	         certificates made here), and votes; then, as member0 over
//	         TLS with its certificate, PUTs /app/account/{user}/current_account
//	         and POSTs /app/deposit/... {"value": --deposit} for each user
//	load     --clients clients in a closed loop for --duration, client i
//	         acting as user i mod --users (its own TLS client certificate),
//	         each POSTing /app/transfer/current_account of 1 to a random
//	         other user; 204 is a transfer, anything else an error counted
//	         by status and CCF error code. Clients are spread over the
//	         nodes round-robin; followers forward the writes to the leader.
//	check    each user GETs its balance, before and after the load; the
//	         sums must be equal (transfers move money, they never make or
//	         lose it), and the report says if the first is not
//	         --users × --deposit
//
// Distinct users mostly avoid write conflicts (two transfers conflict when
// they touch the same account); the node retries a conflict itself, and
// one it gives up on comes back as 503 TransactionConflict. The default is
// one client per user: with two clients per user, the pair's transfers
// always touch the same account, and re-running the losers cost about 40%
// more charterd CPU per transfer on a 2-core machine.
//
// With Linux /proc, each network's report also gives charterd's CPU time
// per transfer (all its nodes), charterbench's own, and what the rest of
// the machine used during the load: on a shared machine that says how
// much of the difference between runs is the neighbours.

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
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/charterlog/charter/internal/app"
	"github.com/charterlog/charter/internal/govwire"
)

// nodeList is --nodes: one network size, or with --app a comma-separated
// list of them.
type nodeList []int

func (l *nodeList) String() string {
	if l == nil {
		return ""
	}
	s := make([]string, len(*l))
	for i, n := range *l {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (l *nodeList) Set(v string) error {
	var out nodeList
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return fmt.Errorf("%q is not a number of nodes", f)
		}
		if n < 1 || n > 9 {
			return fmt.Errorf("%d: charterd cluster starts 1 to 9 nodes", n)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

// bankingAccount is the one account each bench user holds.
const bankingAccount = "current_account"

// maxUsersPerProposal is how many set_user actions one proposal carries:
// governance takes at most 64 actions per proposal.
const maxUsersPerProposal = 64

// checkAppOptions checks the flags of an --app run; the flags of the
// registration bench that it does not use are refused rather than ignored.
func checkAppOptions(o options, fs *flag.FlagSet) error {
	var unused []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "url", "cacert", "compare", "policy", "compare-policy", "rounds", "publishers", "payload-bytes",
			"keys", "presign-rate", "verify-time", "content-type", "warmup", "follow-leader":
			unused = append(unused, "--"+f.Name)
		}
	})
	switch {
	case o.app != "banking":
		return fmt.Errorf("--app %q: the only app is banking", o.app)
	case fs.NArg() > 0:
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case len(unused) > 0:
		return fmt.Errorf("--app banking does not take %s", strings.Join(unused, ", "))
	case o.charterd == "":
		return errors.New("--app banking starts its networks: it needs --charterd PATH")
	case o.users < 2:
		return fmt.Errorf("--users %d: a transfer needs two users", o.users)
	case o.users > 10000:
		return fmt.Errorf("--users %d: at most 10000", o.users)
	case o.clients < 1:
		return fmt.Errorf("--clients %d: need at least one", o.clients)
	case o.deposit < 1 || o.deposit > 1<<31:
		return fmt.Errorf("--deposit %d: between 1 and 2^31 (balances are uint32)", o.deposit)
	case o.duration <= 0 || o.maxWait <= 0:
		return errors.New("--duration and --max-wait must be positive")
	case o.debugAddr != "" && slices.ContainsFunc(o.nodeList, func(n int) bool { return n > 1 }):
		return errors.New("--charterd-debug-addr is for a dev node: give --nodes 1")
	}
	if st, err := os.Stat(filepath.Join(o.bundleDir, "app.json")); err != nil || !st.Mode().IsRegular() {
		if _, err2 := os.Stat(filepath.Join(o.bundleDir, "src", "endpoints", "app.json")); err2 != nil {
			return fmt.Errorf("--bundle %s: no app.json (run from the repository root, or give the folder of samples/banking)", o.bundleDir)
		}
	}
	return nil
}

// benchUser is one bench user: its key, certificate and id (the hex
// SHA-256 of the certificate's DER, as CCF's user_cert policy names it).
type benchUser struct {
	id      string
	certPEM string
	tlsCert tls.Certificate
}

func newBenchUsers(n int) ([]benchUser, error) {
	users := make([]benchUser, n)
	for i := range users {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 1)), Subject: pkix.Name{CommonName: fmt.Sprintf("bench user %d", i)},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
		if err != nil {
			return nil, err
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		users[i] = benchUser{
			id:      govwire.MemberIDOf(cert),
			certPEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
			tlsCert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k, Leaf: cert},
		}
	}
	return users, nil
}

// withClientCert makes c present cert in its TLS handshakes.
func withClientCert(c *http.Client, cert tls.Certificate) *http.Client {
	tr := c.Transport.(*http.Transport)
	tr.TLSClientConfig.Certificates = []tls.Certificate{cert}
	return c
}

// bankingResult is one network's banking measurement.
type bankingResult struct {
	label   string
	nodes   int
	r       result
	cpu     cpuUse
	sum     uint64 // of the balances after the load
	want    uint64 // the sum before the load (users × deposit)
	checked int    // balances read
	// checkErr is why the balances could not all be read, or "".
	checkErr string
}

func (b bankingResult) conserved() bool { return b.checkErr == "" && b.sum == b.want }

// benchApp runs --app banking on each network of --nodes in turn and
// prints each one's table and the summary.
func benchApp(ctx context.Context, o options, stdout, stderr io.Writer) error {
	bundle, err := app.BuildBundle(o.bundleDir)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(bundle)
	if err != nil {
		return err
	}
	appArgs, err := json.Marshal(map[string]json.RawMessage{"bundle": raw})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "making %d user certificates…\n", o.users)
	users, err := newBenchUsers(o.users)
	if err != nil {
		return err
	}
	var results []bankingResult
	for _, n := range o.nodeList {
		res, err := measureBanking(ctx, o, n, appArgs, users, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", nodeLabel(n), err)
		}
		results = append(results, res)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	bankingReport(stdout, o, results)
	var bad []string
	for _, res := range results {
		switch {
		case res.r.ok == 0:
			bad = append(bad, res.label+": no transfer succeeded")
		case !res.conserved():
			bad = append(bad, res.label+": money not conserved")
		}
	}
	if len(bad) > 0 {
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// measureBanking starts a network of n nodes, sets the app up on it,
// loads it and checks the balances, and stops it before it returns.
func measureBanking(ctx context.Context, o options, n int, appArgs []byte, users []benchUser, stderr io.Writer) (res bankingResult, err error) {
	nw, err := startNetwork(ctx, o, n, stderr)
	if err != nil {
		return res, err
	}
	defer func() {
		if serr := nw.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	mem, err := loadMember(filepath.Join(nw.d.dir, "data"))
	if err != nil {
		return res, err
	}
	return runBanking(ctx, o, nw.urls, nw.roots, mem, appArgs, users, nw.d.pids(), stderr)
}

// pids are the processes that do the network's work: the dev node, or the
// cluster's nodes (from their pid files; the launcher only waits).
func (d *daemon) pids() []int {
	if d.nodes == 0 {
		return []int{d.cmd.Process.Pid}
	}
	var out []int
	for i := 1; i <= d.nodes; i++ {
		b, err := os.ReadFile(filepath.Join(d.dir, "data", fmt.Sprintf("node%d.pid", i)))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			out = append(out, pid)
		}
	}
	return out
}

// runBanking is setup, load and check against a serving network whose
// member0 is mem; pids (may be empty) are its processes, for CPU time.
func runBanking(ctx context.Context, o options, urls []*url.URL, roots *x509.CertPool, mem *member, appArgs []byte, users []benchUser, pids []int, stderr io.Writer) (bankingResult, error) {
	res := bankingResult{label: nodeLabel(len(urls)), nodes: len(urls)}
	memClient := withClientCert(newClient(roots), tls.Certificate{Certificate: [][]byte{mem.cert.Raw}, PrivateKey: mem.signer, Leaf: mem.cert})
	defer memClient.CloseIdleConnections()
	gov0 := urls[0]

	t0 := time.Now()
	if err := propose(ctx, memClient, gov0, mem, "the banking app (set_js_app)", govwire.Action{Name: "set_js_app", Args: appArgs}); err != nil {
		return res, err
	}
	for from := 0; from < len(users); from += maxUsersPerProposal {
		var actions []govwire.Action
		for _, u := range users[from:min(from+maxUsersPerProposal, len(users))] {
			a, _ := json.Marshal(map[string]string{"cert": u.certPEM})
			actions = append(actions, govwire.Action{Name: "set_user", Args: a})
		}
		if err := propose(ctx, memClient, gov0, mem, fmt.Sprintf("%d users (set_user)", len(actions)), actions...); err != nil {
			return res, err
		}
	}
	if err := openAccounts(ctx, memClient, gov0, users, o.deposit); err != nil {
		return res, err
	}
	// The reference is what the balances sum to before the load, read the
	// same way as after it: a deposit retried after a 503 it had in fact
	// survived cannot pass for money made by transfers.
	sum0, _, err := sumBalances(ctx, roots, urls[0], users)
	if err != nil {
		return res, fmt.Errorf("reading the opening balances: %w", err)
	}
	res.want = sum0
	fmt.Fprintf(stderr, "app deployed, %d users with %d each, in %s\n", len(users), o.deposit, time.Since(t0).Round(time.Millisecond))

	bases := assign(urls, o.clients)
	clients := make([]*http.Client, o.clients)
	for i := range clients {
		clients[i] = withClientCert(newClient(roots), users[i%len(users)].tlsCert)
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	if err := warmUp(ctx, bases, clients); err != nil {
		return res, err
	}
	// bodies[j] transfers 1 to user j.
	bodies := make([][]byte, len(users))
	for j, u := range users {
		bodies[j] = fmt.Appendf(nil, `{"value":1,"user_id_to":%q,"account_name_to":%q}`, u.id, bankingAccount)
	}
	spread := ""
	if len(urls) > 1 {
		spread = fmt.Sprintf(" over %d nodes", len(urls))
	}
	fmt.Fprintf(stderr, "banking: closed loop, %d clients as %d users%s, %s…\n", o.clients, len(users), spread, o.duration)
	before := readCPU(pids)
	rngs := make([]*mrand.Rand, o.clients)
	for i := range rngs {
		rngs[i] = mrand.New(mrand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
	}
	res.r = closedLoop(ctx, o.clients, o.duration, o.maxWait, func(ctx context.Context, i int) outcome {
		u := i % len(users)
		to := otherUser(rngs[i], u, len(users))
		return appRequest(ctx, clients[i], http.MethodPost, bases[i].JoinPath("app", "transfer", bankingAccount), bodies[to], http.StatusNoContent, nil)
	})
	res.cpu = readCPU(pids).since(before)

	sum, n, err := sumBalances(ctx, roots, urls[0], users)
	res.sum, res.checked = sum, n
	if err != nil {
		res.checkErr = err.Error()
	}
	return res, nil
}

// otherUser picks a user other than u, uniformly, out of n ≥ 2.
func otherUser(r *mrand.Rand, u, n int) int {
	j := r.IntN(n - 1)
	if j >= u {
		j++
	}
	return j
}

// openAccounts creates each user's account and deposits amount in it, as
// the member, 16 users at a time.
func openAccounts(ctx context.Context, c *http.Client, base *url.URL, users []benchUser, amount uint) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 16)
	)
	deposit := fmt.Appendf(nil, `{"value":%d}`, amount)
	for _, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			steps := []struct {
				method string
				path   *url.URL
				body   []byte
			}{
				{http.MethodPut, base.JoinPath("app", "account", u.id, bankingAccount), nil},
				{http.MethodPost, base.JoinPath("app", "deposit", u.id, bankingAccount), deposit},
			}
			for _, s := range steps {
				if err := retrying(ctx, func(ctx context.Context) outcome {
					return appRequest(ctx, c, s.method, s.path, s.body, http.StatusNoContent, nil)
				}); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s %s: %w", s.method, s.path.Path, err))
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("opening the accounts (%d failed): %w", len(errs), errs[0])
	}
	return nil
}

// retrying runs op until it succeeds, up to 5 times when it fails with a
// 503 (a conflict the node gave up on, or leadership moving).
func retrying(ctx context.Context, op func(context.Context) outcome) error {
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		o := op(rctx)
		cancel()
		if o.ok {
			return nil
		}
		if !strings.HasPrefix(o.failure, "503") || attempt == 4 {
			if o.detail != "" {
				return fmt.Errorf("%s: %s", o.failure, o.detail)
			}
			return errors.New(o.failure)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sumBalances reads every user's balance, as that user, and adds them up;
// it returns how many it read.
func sumBalances(ctx context.Context, roots *x509.CertPool, base *url.URL, users []benchUser) (uint64, int, error) {
	var (
		mu   sync.Mutex
		sum  uint64
		read int
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 16)
	)
	for _, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			c := withClientCert(newClient(roots), u.tlsCert)
			defer c.CloseIdleConnections()
			var body []byte
			err := retrying(ctx, func(ctx context.Context) outcome {
				return appRequest(ctx, c, http.MethodGet, base.JoinPath("app", "balance", bankingAccount), nil, http.StatusOK, &body)
			})
			var b struct {
				Balance *uint64 `json:"balance"`
			}
			if err == nil {
				if jerr := json.Unmarshal(body, &b); jerr != nil || b.Balance == nil {
					err = fmt.Errorf("balance answer %q", body)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("user %s…: %w", u.id[:8], err))
				return
			}
			sum += *b.Balance
			read++
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return sum, read, fmt.Errorf("%d balances unread: %w", len(errs), errs[0])
	}
	return sum, read, nil
}

// appRequest sends one request to the app and expects want; the response
// body goes to out when it is not nil. A failure is named by status and
// the CCF error code ({"error": {"code", "message"}}) or, for the app's
// own plain-text answers, by their text ("400 Balance is not enough").
func appRequest(ctx context.Context, c *http.Client, method string, u *url.URL, body []byte, want int, out *[]byte) outcome {
	start := time.Now()
	fail := func(f, detail string) outcome {
		return outcome{latency: time.Since(start), failure: f, detail: detail}
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fail("request: "+err.Error(), "")
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return fail(transportFailure(ctx, err), err.Error())
	}
	b, status, hdr, err := drain(resp)
	if err != nil {
		return fail(transportFailure(ctx, err), err.Error())
	}
	if status != want {
		kind, detail := appFailure(status, hdr, b)
		return fail(kind, detail)
	}
	if out != nil {
		*out = b
	}
	return outcome{ok: true, latency: time.Since(start)}
}

// appFailure names a failed app response and gives its message.
func appFailure(status int, hdr http.Header, body []byte) (kind, detail string) {
	s := strconv.Itoa(status)
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if strings.HasPrefix(hdr.Get("Content-Type"), "application/json") && json.Unmarshal(body, &e) == nil && e.Error.Code != "" {
		return s + " " + e.Error.Code, e.Error.Message
	}
	text := strings.TrimSpace(string(body))
	if text != "" && len(text) <= 60 && !strings.ContainsAny(text, "\n{") {
		return s + " " + text, ""
	}
	if t := http.StatusText(status); t != "" {
		return s + " " + t, text
	}
	return s, text
}

// bankingReport prints the summary table, then each network's CPU use,
// errors by kind and balance check.
func bankingReport(w io.Writer, o options, results []bankingResult) {
	fmt.Fprintf(w, "\nbanking: transfers of 1 between %d users, %d clients in a closed loop for %s per network\n", o.users, o.clients, o.duration)
	if o.clients > o.users {
		fmt.Fprintf(w, "(more clients than users: a user's clients conflict with each other, and the node re-runs the transfer that lost)\n")
	}
	fmt.Fprintf(w, "%-10s %12s %10s %10s %9s %8s %14s\n", "network", "transfers/s", "p50", "p99", "ok", "errors", "CPU/transfer")
	for _, res := range results {
		lat := slices.Clone(res.r.latencies)
		slices.Sort(lat)
		cpu := "-"
		if res.cpu.known && res.r.ok > 0 {
			cpu = fmt.Sprintf("%.0fµs", res.cpu.charterd.Seconds()*1e6/float64(res.r.ok))
		}
		fmt.Fprintf(w, "%-10s %12.1f %10s %10s %9d %8d %14s\n", res.label, res.r.rate(),
			fmtDur(percentile(lat, 50)), fmtDur(percentile(lat, 99)), res.r.ok, res.r.errors(), cpu)
	}
	for _, res := range results {
		fmt.Fprintf(w, "\n%s:\n", res.label)
		if c := res.cpu; c.known && c.wall > 0 {
			others := max(c.machine-c.charterd-c.bench, 0)
			fmt.Fprintf(w, "  CPU over %.1fs of load, in cores: machine busy %.2f of %d, charterd %.2f, charterbench %.2f, other processes %.2f\n",
				c.wall.Seconds(), c.machine.Seconds()/c.wall.Seconds(), c.cores, c.charterd.Seconds()/c.wall.Seconds(),
				c.bench.Seconds()/c.wall.Seconds(), others.Seconds()/c.wall.Seconds())
			if res.r.ok > 0 {
				fmt.Fprintf(w, "  CPU per transfer: charterd %.0fµs, charterbench %.0fµs\n",
					c.charterd.Seconds()*1e6/float64(res.r.ok), c.bench.Seconds()*1e6/float64(res.r.ok))
			}
		}
		if res.r.errors() > 0 {
			fmt.Fprintln(w, "  errors:")
			res.r.writeFailures(w, "    ")
		}
		switch {
		case res.checkErr != "":
			fmt.Fprintf(w, "  money conserved: UNKNOWN: %s (sum of %d balances read: %d)\n", res.checkErr, res.checked, res.sum)
		case res.conserved():
			fmt.Fprintf(w, "  money conserved: yes: the %d balances sum to %d after the load, as before it\n", res.checked, res.sum)
		default:
			fmt.Fprintf(w, "  money conserved: NO: the %d balances sum to %d after the load, %d before it\n", res.checked, res.sum, res.want)
		}
		if deposited := uint64(o.users) * uint64(o.deposit); res.want != deposited {
			fmt.Fprintf(w, "  note: the opening balances summed to %d, not %d users × %d = %d\n", res.want, o.users, o.deposit, deposited)
		}
	}
}
