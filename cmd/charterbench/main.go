// Command charterbench is Charter's load generator. It measures how many
// signed statements a node registers per second and how long a publisher
// waits for its receipt, against a fresh dev node it starts itself
// (--charterd) or a running one (--url, --cacert). Loopback only; every
// phase is bounded in time and the run stops by itself.
//
// Statements are signed before the clock starts (ES256, --keys publisher
// chains, unique payloads), so the run measures the server, not the
// generator. A registration is POST /entries until a 201 receipt, or a
// 303/302 followed by GETs of the Location (honouring Retry-After) until a
// 200 receipt; its latency is the whole time.
//
//	warm-up  (--warmup D) closed loop for D, not counted
//	phase 1  closed loop: --publishers each send the next statement as soon
//	         as the previous one has its receipt, for --duration
//	phase 2  open loop: arrivals paced at half the phase-1 rate for
//	         --duration; latency counts from the scheduled arrival
//	phase 3  one goroutine verifying one ES256 signature for --verify-time
//
// --batch N sends N statements per POST /entries/batch instead (batch.go):
// in phase 1 each publisher its next N when the last N are answered, in
// phase 2 one batch of N every N ÷ rate seconds on the same fixed clock.
// Rates count statements, and a statement's latency is its batch's (until
// its receipt, in the answer or from GET /entries/{id}).
//
// Failures are counted by status and problem title and always printed.
//
// After each network's table: the server CPU per registration of phase 1
// (charterd's processes, and charterbench's own) and its breakdown by
// stage, read from the nodes' /metrics before and after phase 1
// (stages.go).
//
// --nodes N (with --charterd) starts `charterd cluster --nodes N` instead
// of a dev node, and --url takes a comma-separated list of a network's
// nodes; either way each publisher is given one node, round-robin. A
// follower forwards a write to the leader and names it (Charter-Leader),
// and the publisher sends its next writes there, as the Go client does;
// with --follow-leader=false it stays, and with three nodes two thirds of
// the writes are forwarded throughout. --compare measures one node and
// then N nodes (3 by default) in one run and prints the ratio of their
// phase-1 registrations/s.
//
// --policy FILE (with --charterd) sets FILE, a JS registration policy, through
// governance as the started network's member0 once it serves, so every
// registration runs it. --compare-policy measures the same network without
// and then with the policy in one run and prints the ratio of their phase-1
// registrations/s (aim: the policy costs at most 5%). The statements'
// content type is --content-type: a policy with an allow list must accept
// it, or the table shows only PolicyFailed.
//
// --rounds N repeats --compare or --compare-policy N times and prints each
// round and the median ratio, since one pair of runs on a shared machine
// moves by more than the 5% being judged. With --compare-policy and N > 1
// one node is started once and loaded 2N times (phase 1 only), without
// and with the policy, the order alternating per round; see rounds.go.
package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/charterlog/charter/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

type options struct {
	charterd     string
	url          string
	cacert       string
	publishers   int
	duration     time.Duration
	warmup       time.Duration // an unmeasured closed loop before phase 1 on each network; 0: none
	followLeader bool          // publishers send their writes to the leader a follower names (client.HeaderLeader)
	payloadBytes int
	keys         int
	presignRate  int
	batch        int // statements per request: 1 is POST /entries, more POST /entries/batch (batch.go)
	maxWait      time.Duration
	verifyTime   time.Duration
	startTimeout time.Duration
	logLevel     string
	nodes        int
	compare      bool
	policyFile   string
	policySrc    string // the contents of policyFile
	comparePol   bool
	rounds       int
	contentType  string
	urls         []*url.URL // --url, split at commas
	// --app banking (see banking.go)
	app       string
	nodeList  []int // --nodes: the networks to measure, in order; [nodes] without --app
	users     int
	clients   int
	bundleDir string
	deposit   uint
	debugAddr string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("charterbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.charterd, "charterd", "", "path to a charterd binary: start a fresh dev node (or, with --nodes N > 1, a local N-node cluster) in a temporary directory and stop it at the end")
	fs.StringVar(&o.url, "url", "", "base URL of a running node (loopback), or a comma-separated list of a network's nodes, instead of --charterd")
	nodes := nodeList{1}
	fs.Var(&nodes, "nodes", "with --charterd: how many nodes to start (> 1 runs `charterd cluster`); publishers are spread over the nodes round-robin. With --app, a comma-separated list of network sizes measured one after the other (default 1,3)")
	fs.StringVar(&o.app, "app", "", "measure a JS app instead of registrations: banking (transfers of the samples/banking app between --users users, --clients clients in a closed loop)")
	fs.IntVar(&o.users, "users", 128, "with --app banking: users, each with one funded account")
	fs.IntVar(&o.clients, "clients", 128, "with --app banking: concurrent clients, client i acting as user i mod --users with that user's TLS client certificate; more clients than users makes a user's clients conflict with each other (the node re-runs a conflicting transfer, which costs CPU)")
	fs.StringVar(&o.bundleDir, "bundle", "samples/banking", "with --app banking: the app's folder (app.json and src/), deployed by governance")
	fs.UintVar(&o.deposit, "deposit", 1_000_000, "with --app banking: each account's opening balance")
	fs.StringVar(&o.debugAddr, "charterd-debug-addr", "", "with --charterd: --debug-addr (pprof) for a started dev node; clusters do not take it")
	fs.BoolVar(&o.compare, "compare", false, "with --charterd: measure one node, then --nodes nodes (3 if --nodes is 1), and print the ratio of their phase-1 registrations/s")
	fs.StringVar(&o.policyFile, "policy", "", "with --charterd: a JS registration policy file that governance sets (as the network's member0) before the load starts")
	fs.BoolVar(&o.comparePol, "compare-policy", false, "with --charterd and --policy: measure without the policy, then on a fresh network with it, and print the ratio of their phase-1 registrations/s")
	fs.IntVar(&o.rounds, "rounds", 1, "with --compare or --compare-policy: repeat the comparison N times and report each round and the median ratio; with --compare-policy and N > 1, one node is loaded in every round, phase 1 only, without and with the policy in alternating order")
	fs.StringVar(&o.contentType, "content-type", "application/octet-stream", "content type (label 3) of the signed statements")
	fs.StringVar(&o.cacert, "cacert", "", "the service certificate (PEM) to pin, with --url")
	// Closed-loop throughput is publishers ÷ latency (Little's law), and a
	// receipt waits for the next checkpoint (50 ms by default), so measuring
	// capacity rather than the checkpoint cadence takes hundreds of publishers.
	fs.IntVar(&o.publishers, "publishers", 400, "concurrent publishers, each with its own keep-alive HTTPS connection")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each load phase")
	fs.DurationVar(&o.warmup, "warmup", 0, "before phase 1, load each network in a closed loop for this long and count nothing: a fresh node's first seconds pay one-time costs (its heap and Pebble's memtables growing into memory the system has not mapped yet) that a node in service has paid; 0 measures from the node's start")
	fs.BoolVar(&o.followLeader, "follow-leader", true, "on a network of several nodes, a publisher whose node forwarded its write to the leader sends its next writes to the leader that node named (header Charter-Leader), as the Go client does; false keeps every publisher on its own node, so followers forward two thirds of the writes")
	fs.IntVar(&o.payloadBytes, "payload-bytes", 1024, "payload size of each statement")
	fs.IntVar(&o.keys, "keys", 8, "distinct ES256 publisher keys and chains")
	fs.IntVar(&o.presignRate, "presign-rate", 20000, "statements signed ahead for phase 1, per second of --duration")
	fs.IntVar(&o.batch, "batch", 1, "statements per request: 1 sends POST /entries; N > 1 sends N per POST /entries/batch, in phase 2 one batch every N ÷ rate seconds (the rate counts statements; each statement's latency is its batch's)")
	fs.DurationVar(&o.maxWait, "max-wait", 30*time.Second, "longest one registration may take (POST and polls) before it counts as a timeout")
	fs.DurationVar(&o.verifyTime, "verify-time", 2*time.Second, "length of the single-core ES256 verify measurement")
	fs.DurationVar(&o.startTimeout, "start-timeout", 60*time.Second, "how long to wait for a started charterd to serve")
	fs.StringVar(&o.logLevel, "charterd-log-level", "warn", "--log-level for a started charterd (its log stays in the temporary directory)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	nodesSet := false
	fs.Visit(func(f *flag.Flag) { nodesSet = nodesSet || f.Name == "nodes" })
	o.nodes, o.nodeList = nodes[0], nodes
	if o.app != "" {
		if !nodesSet {
			o.nodeList = nodeList{1, 3}
		}
		return o, checkAppOptions(o, fs)
	}
	switch {
	case len(nodes) > 1:
		return o, errors.New("--nodes takes a list with --app only; --compare measures one node and then --nodes N")
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case (o.charterd == "") == (o.url == ""):
		return o, errors.New("give exactly one of --charterd PATH or --url URL --cacert PEM")
	case o.url != "" && o.cacert == "":
		return o, errors.New("--url needs --cacert (the service certificate to pin)")
	case o.publishers < 1:
		return o, fmt.Errorf("--publishers %d: need at least one", o.publishers)
	case o.duration <= 0 || o.verifyTime <= 0 || o.maxWait <= 0:
		return o, errors.New("--duration, --verify-time and --max-wait must be positive")
	case o.warmup < 0:
		return o, errors.New("--warmup must not be negative")
	case o.presignRate < 0:
		return o, errors.New("--presign-rate must not be negative")
	case o.batch < 1 || o.batch > 10000:
		return o, fmt.Errorf("--batch %d: want 1 to 10000 statements per request", o.batch)
	case o.nodes < 1 || o.nodes > 9:
		return o, fmt.Errorf("--nodes %d: charterd cluster starts 1 to 9 nodes", o.nodes)
	case o.url != "" && (o.nodes != 1 || o.compare):
		return o, errors.New("--nodes and --compare start nodes: they need --charterd, not --url")
	case o.url != "" && o.policyFile != "":
		return o, errors.New("--policy is set as the member0 of a network charterbench starts: it needs --charterd, not --url")
	case o.comparePol && o.policyFile == "":
		return o, errors.New("--compare-policy needs --policy FILE")
	case o.comparePol && o.compare:
		return o, errors.New("give one of --compare and --compare-policy")
	case o.rounds < 1:
		return o, fmt.Errorf("--rounds %d: need at least one", o.rounds)
	case o.rounds > 1 && !o.compare && !o.comparePol:
		return o, errors.New("--rounds repeats a comparison: it needs --compare or --compare-policy")
	case o.warmup > 0 && o.comparePol && o.rounds > 1:
		return o, errors.New("--compare-policy --rounds N warms its one node up with a first, uncounted phase 1: it does not take --warmup")
	}
	if o.policyFile != "" {
		b, err := os.ReadFile(o.policyFile)
		if err != nil {
			return o, fmt.Errorf("--policy: %w", err)
		}
		if len(bytes.TrimSpace(b)) == 0 {
			return o, fmt.Errorf("--policy %s is empty (an empty policy means none)", o.policyFile)
		}
		o.policySrc = string(b)
	}
	if o.url != "" {
		urls, err := parseURLs(o.url)
		if err != nil {
			return o, err
		}
		o.urls = urls
	}
	if o.compare && o.nodes == 1 {
		o.nodes = 3
	}
	return o, nil
}

// parseURLs splits --url at commas: each element must be a loopback https
// base URL, and none may repeat (a repeat would load one node twice as
// hard as the others without saying so).
func parseURLs(list string) ([]*url.URL, error) {
	var out []*url.URL
	seen := map[string]bool{}
	for _, raw := range strings.Split(list, ",") {
		raw = strings.TrimSuffix(strings.TrimSpace(raw), "/")
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "https" || !isLoopback(u.Hostname()) || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("--url %q: charterbench loads loopback https base URLs only", raw)
		}
		if seen[u.Host] {
			return nil, fmt.Errorf("--url: %s is listed twice", u.Host)
		}
		seen[u.Host] = true
		out = append(out, u)
	}
	return out, nil
}

// assign gives publisher i node i mod len(urls): round-robin, so with
// three nodes every node is the first contact of a third of the
// publishers (writeTo says where their writes then go).
func assign(urls []*url.URL, publishers int) []*url.URL {
	out := make([]*url.URL, publishers)
	for i := range out {
		out[i] = urls[i%len(urls)]
	}
	return out
}

func isLoopback(host string) bool {
	return host == "localhost" || strings.HasPrefix(host, "127.") || host == "::1"
}

// run is main without the exit: 0 when the run completed with at least one
// registration, 1 otherwise, 2 for usage errors.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "charterbench:", err)
		return 2
	}
	if err := bench(ctx, o, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "charterbench:", err)
		return 1
	}
	return 0
}

func bench(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if o.app != "" {
		return benchApp(ctx, o, stdout, stderr)
	}
	s, err := newSigner(o.keys, o.payloadBytes)
	if err != nil {
		return err
	}
	s.contentType = o.contentType
	var (
		runs   []measurement // in the order they ran
		rounds []round
	)
	switch {
	case o.comparePol && o.rounds > 1:
		rounds, err = measurePolicyRounds(ctx, o, s, stderr)
		for _, rd := range rounds {
			first, second := rd.base, rd.other
			if second.order < first.order {
				first, second = second, first
			}
			runs = append(runs, first, second)
		}
	case o.compare || o.comparePol:
		base, other := variant{nodes: 1, policy: o.policySrc}, variant{nodes: o.nodes, policy: o.policySrc}
		if o.comparePol {
			base, other = variant{nodes: o.nodes}, variant{nodes: o.nodes, policy: o.policySrc}
		}
		for r := 0; r < o.rounds && err == nil; r++ {
			var rd round
			if rd.base, err = measure(ctx, o, s, base, stderr); err == nil {
				rd.other, err = measure(ctx, o, s, other, stderr)
			}
			rd.base.order, rd.other.order = 2*r, 2*r+1
			runs = append(runs, rd.base, rd.other)
			if err == nil {
				rounds = append(rounds, rd)
			}
		}
	default:
		var m measurement
		m, err = measure(ctx, o, s, variant{nodes: o.nodes, policy: o.policySrc}, stderr)
		runs = append(runs, m)
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Phase 3 runs once, after every node this run started has stopped, so
	// nothing competes with it for the CPU.
	fmt.Fprintf(stderr, "phase 3: single-core ES256 verify, %s…\n", o.verifyTime)
	vps, err := verifyRate(o.verifyTime)
	if err != nil {
		return err
	}
	for i, m := range runs {
		if len(runs) > 1 {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			label := m.label
			if o.rounds > 1 {
				label = fmt.Sprintf("round %d, %s", m.order/2+1, m.label)
			}
			fmt.Fprintf(stdout, "== %s", label)
		}
		report(stdout, m.rows, vps, m.signedLate)
		if m.nodes > 1 {
			fmt.Fprintf(stdout, "writes: %d of %d publishers sent theirs to the leader their node named (--follow-leader=%t); the rest to their own node\n", m.moved, m.publishers, o.followLeader)
		}
		writeBreakdown(stdout, m.breakdown)
	}
	switch {
	case o.rounds > 1 && o.comparePol:
		roundsReport(stdout, rounds, "with policy ÷ without policy registrations/s", 0.95)
	case o.rounds > 1:
		roundsReport(stdout, rounds, fmt.Sprintf("%d-node ÷ one-node registrations/s", o.nodes), 0.70)
	case o.comparePol:
		comparePolicyReport(stdout, rounds[0].base, rounds[0].other)
	case o.compare:
		compareReport(stdout, rounds[0].base, rounds[0].other)
	}
	for _, m := range runs {
		if m.rows[0].r.ok == 0 {
			return fmt.Errorf("%s: phase 1 registered nothing; see the errors above", m.label)
		}
	}
	return nil
}

// variant is one network a run measures: its size and the registration
// policy governance sets on it ("" for none).
type variant struct {
	nodes  int
	policy string
}

// measurement is phases 1 and 2 against one network.
type measurement struct {
	label      string // "one node", "3 nodes", or the --url list
	nodes      int
	order      int           // 0 for the first measurement of a run, 1 for the next, ...
	cpu        time.Duration // CPU time charterd used during phase 1; 0 if unknown
	breakdown  breakdown     // phase 1's cost by stage (stages.go)
	rows       []row
	signedLate int64
	// moved of publishers wrote to the leader rather than their own node
	// by the end of phase 2.
	moved, publishers int
}

// compareReport prints the multi-node phase-1 rate as a share of the
// single-node one: issue 3 aims for at least 70%.
func compareReport(w io.Writer, one, many measurement) {
	a, b := one.rows[0].r.rate(), many.rows[0].r.rate()
	ratio := 0.0
	if a > 0 {
		ratio = b / a
	}
	fmt.Fprintf(w, "\nratio %d-node ÷ one-node registrations/s (phase 1): %.2f (%.1f/s ÷ %.1f/s; aim ≥ 0.70)\n", many.nodes, ratio, b, a)
	// On one machine the nodes share its cores, so the ratio is one node's
	// CPU over the sum of all of them. With a core or more per node, the
	// busiest node (the leader) bounds the network instead; this ratio is
	// what that would approach. It is a projection, not a measurement.
	if c1, ok1 := busiest(one.breakdown); ok1 {
		if cn, okn := busiest(many.breakdown); okn && cn > 0 {
			fmt.Fprintf(w, "one node's CPU per registration ÷ the busiest of %d nodes': %.2f (%s ÷ %s): the ratio a machine per node would approach, not measured here\n",
				many.nodes, c1.Seconds()/cn.Seconds(), c1.Round(100*time.Nanosecond), cn.Round(100*time.Nanosecond))
		}
	}
}

// comparePolicyReport prints the phase-1 rate with the policy as a share of
// the rate without it: issue 5 aims for at most a 5% loss.
func comparePolicyReport(w io.Writer, without, with measurement) {
	a, b := without.rows[0].r.rate(), with.rows[0].r.rate()
	ratio := 0.0
	if a > 0 {
		ratio = b / a
	}
	fmt.Fprintf(w, "\nratio with policy ÷ without policy registrations/s (phase 1): %.3f (%.1f/s ÷ %.1f/s; aim ≥ 0.95)\n", ratio, b, a)
}

// nodeLabel names a network of n nodes in the report.
func nodeLabel(n int) string {
	if n == 1 {
		return "one node"
	}
	return fmt.Sprintf("%d nodes", n)
}

// measure starts a network of n nodes (with --charterd) or uses --url,
// runs phases 1 and 2 with the publishers spread over its nodes, and stops
// what it started before it returns.
func measure(ctx context.Context, o options, s *signer, v variant, stderr io.Writer) (m measurement, err error) {
	n := v.nodes
	m = measurement{label: nodeLabel(n), nodes: n}
	switch {
	case v.policy != "":
		m.label += ", policy " + filepath.Base(o.policyFile)
	case o.comparePol:
		m.label += ", no policy"
	}
	pool1, err := presignPhase1(o, s, stderr)
	if err != nil {
		return m, err
	}
	var pool0 *pool
	if o.warmup > 0 {
		if pool0, err = presignFor(o, s, o.warmup, "the warm-up", stderr); err != nil {
			return m, err
		}
	}
	nw, err := startNetwork(ctx, o, n, stderr)
	if err != nil {
		return m, err
	}
	// The network stops before the next measurement or phase 3, so it does
	// not compete for the CPU; the deferred stop covers a phase that fails
	// first.
	defer func() {
		if serr := nw.stop(); serr != nil && err == nil {
			err = serr
		}
	}()
	if o.url != "" {
		m.nodes = len(nw.urls)
		m.label = nodeLabel(len(nw.urls))
	}
	if v.policy != "" {
		if err := nw.setPolicy(ctx, o, v.policy, stderr); err != nil {
			return m, err
		}
	}
	pubs, err := connect(ctx, o, nw)
	if err != nil {
		return m, err
	}
	defer pubs.close()

	if pool0 != nil {
		warm := o
		warm.duration = o.warmup
		fmt.Fprint(stderr, "warm-up (not measured): ")
		r0 := runPhase1(ctx, warm, pubs, pool0, stderr)
		fmt.Fprintf(stderr, "warm-up: %.1f registrations/s, %d failed\n", r0.rate(), r0.errors())
		r0.writeFailures(stderr, "  ")
	}
	r1 := m.phase1(ctx, o, nw, pubs, pool1, stderr)
	m.signedLate = pool1.signed.Load()
	m.rows = []row{{name: fmt.Sprintf("1 closed, %d publishers", o.publishers), r: r1}}
	if o.batch > 1 {
		m.rows[0].name += fmt.Sprintf(" × %d", o.batch)
	}

	target := r1.rate() / 2
	plan := planOpen(target, o.duration, o.batch)
	if plan.n >= 1 && ctx.Err() == nil {
		n2 := plan.n*plan.per + o.publishers
		fmt.Fprintf(stderr, "signing %d statements for phase 2…\n", n2)
		pool2, err := s.presign(n2)
		if err != nil {
			return m, err
		}
		cfg := pubs.config(o, pool2)
		name := fmt.Sprintf("2 open at %.1f/s", target)
		var r2 result
		if o.batch > 1 {
			name += fmt.Sprintf(" × %d", o.batch)
			fmt.Fprintf(stderr, "phase 2: open loop at %.1f statements/s, a batch of %d every %s, %s…\n", target, o.batch, plan.interval.Round(time.Microsecond), o.duration)
			r2 = runOpenBatch(ctx, cfg, target, o.batch)
		} else {
			fmt.Fprintf(stderr, "phase 2: open loop at %.1f/s, %s…\n", target, o.duration)
			r2 = runOpen(ctx, cfg, target)
		}
		m.signedLate += pool2.signed.Load()
		m.rows = append(m.rows, row{name: name, r: r2})
	} else {
		fmt.Fprintln(stderr, "phase 2 skipped: phase 1 registered too little to pace half of it")
	}
	m.moved, m.publishers = moved(pubs.routes), len(pubs.routes)
	return m, ctx.Err()
}

// presignPhase1 signs the statements of one phase 1: --presign-rate per
// second of --duration, and at least one per publisher.
func presignPhase1(o options, s *signer, stderr io.Writer) (*pool, error) {
	return presignFor(o, s, o.duration, "phase 1", stderr)
}

// presignFor signs the statements of a closed loop of length d: --presign-rate
// per second, and at least one request's worth per publisher.
func presignFor(o options, s *signer, d time.Duration, what string, stderr io.Writer) (*pool, error) {
	n := max(int(math.Ceil(float64(o.presignRate)*d.Seconds())), o.publishers*o.batch)
	t := time.Now()
	fmt.Fprintf(stderr, "signing %d statements for %s (%d keys, %d-byte payloads)…\n", n, what, o.keys, o.payloadBytes)
	p, err := s.presign(n)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "signed in %s\n", time.Since(t).Round(time.Millisecond))
	return p, nil
}

// network is the nodes a measurement loads: started by this run (d set)
// or given by --url.
type network struct {
	urls    []*url.URL
	roots   *x509.CertPool
	d       *daemon // nil for --url
	stopped bool
}

// startNetwork starts a dev node (n = 1) or a cluster of n nodes with
// --charterd, or checks that every --url node is healthy.
func startNetwork(ctx context.Context, o options, n int, stderr io.Writer) (*network, error) {
	nw := &network{}
	if o.charterd == "" {
		nw.urls = o.urls
		roots, err := loadRoots(o.cacert)
		if err != nil {
			return nil, err
		}
		nw.roots = roots
		for _, u := range nw.urls {
			if err := waitHealthy(ctx, u, roots, 10*time.Second); err != nil {
				return nil, err
			}
		}
		return nw, nil
	}
	var err error
	if n == 1 {
		fmt.Fprintf(stderr, "starting %s dev --addr 127.0.0.1:0…\n", o.charterd)
		var base *url.URL
		extra := []string{"--log-level", o.logLevel}
		if o.debugAddr != "" {
			extra = append(extra, "--debug-addr", o.debugAddr)
		}
		nw.d, base, nw.roots, err = startDaemon(ctx, o.charterd, extra, o.startTimeout)
		nw.urls = []*url.URL{base}
	} else {
		fmt.Fprintf(stderr, "starting %s cluster --nodes %d…\n", o.charterd, n)
		nw.d, nw.urls, nw.roots, err = startCluster(ctx, o.charterd, n, []string{"--log-level", o.logLevel}, o.startTimeout)
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "charterd serving at %s\n", joinURLs(nw.urls))
	return nw, nil
}

// stop stops what startNetwork started, once.
func (nw *network) stop() error {
	if nw.d == nil || nw.stopped {
		return nil
	}
	nw.stopped = true
	return nw.d.stop()
}

// setPolicy sets src as the registration policy through governance, as the
// started network's member0; "" removes the policy.
func (nw *network) setPolicy(ctx context.Context, o options, src string, stderr io.Writer) error {
	mem, err := loadMember(filepath.Join(nw.d.dir, "data"))
	if err != nil {
		return err
	}
	c := newClient(nw.roots)
	ver, err := setPolicy(ctx, c, nw.urls[0], mem, src)
	c.CloseIdleConnections()
	switch {
	case err != nil && src == "":
		return fmt.Errorf("removing the registration policy: %w", err)
	case err != nil:
		return fmt.Errorf("setting the registration policy %s: %w", o.policyFile, err)
	case src == "":
		fmt.Fprintln(stderr, "registration policy removed")
	default:
		fmt.Fprintf(stderr, "registration policy %s in force (version %x)\n", o.policyFile, ver)
	}
	return nil
}

// publishers are the --publishers clients, each pinned to one node of a
// network (round-robin) with its connection open.
type publishers struct {
	bases   []*url.URL // each publisher's own node
	routes  []writeTo  // where each sends its writes: its node, or the leader it named
	clients []*http.Client
	spread  string // " over N nodes", or ""
}

// connect makes the publishers' clients and opens their connections before
// any clock starts: the TLS handshakes are not what the phases measure.
func connect(ctx context.Context, o options, nw *network) (*publishers, error) {
	p := &publishers{bases: assign(nw.urls, o.publishers), clients: make([]*http.Client, o.publishers)}
	p.routes = make([]writeTo, o.publishers)
	for i := range p.clients {
		p.clients[i] = newClient(nw.roots)
		p.routes[i] = writeTo{router: client.NewRouter(p.bases[i]), follow: o.followLeader}
	}
	if len(nw.urls) > 1 {
		p.spread = fmt.Sprintf(" over %d nodes", len(nw.urls))
	}
	if err := warmUp(ctx, p.bases, p.clients); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *publishers) close() {
	for _, c := range p.clients {
		c.CloseIdleConnections()
	}
}

func (p *publishers) config(o options, statements *pool) loadConfig {
	return loadConfig{routes: p.routes, clients: p.clients, pool: statements, duration: o.duration, maxWait: o.maxWait}
}

// runPhase1 is the closed loop over statements.
func runPhase1(ctx context.Context, o options, p *publishers, statements *pool, stderr io.Writer) result {
	fmt.Fprintf(stderr, "phase 1: closed loop, %d publishers%s, %s…\n", o.publishers, p.spread, o.duration)
	if o.batch > 1 {
		return runClosedBatch(ctx, p.config(o, statements), o.batch)
	}
	return runClosed(ctx, p.config(o, statements))
}

func joinURLs(urls []*url.URL) string {
	s := make([]string, len(urls))
	for i, u := range urls {
		s[i] = u.String()
	}
	return strings.Join(s, ", ")
}

// warmUp makes each client open its connection to its node with GET
// /node/health.
func warmUp(ctx context.Context, bases []*url.URL, clients []*http.Client) error {
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, bases[i].JoinPath("node", "health").String(), nil)
			resp, err := c.Do(req)
			if err != nil {
				errs[i] = err
				return
			}
			if _, status, _, _ := drain(resp); status != http.StatusOK {
				errs[i] = fmt.Errorf("GET /node/health: status %d", status)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("connecting the publishers: %w", err)
	}
	return nil
}

type row struct {
	name string
	r    result
}

// report prints the table, every failure by kind, and the verify yardstick.
func report(w io.Writer, rows []row, verifies yardstick, signedLate int64) {
	fmt.Fprintf(w, "\n%-28s %15s %10s %10s %9s %8s\n", "phase", "registrations/s", "p50", "p99", "ok", "errors")
	for _, x := range rows {
		lat := slices.Clone(x.r.latencies)
		slices.Sort(lat)
		fmt.Fprintf(w, "%-28s %15.1f %10s %10s %9d %8d\n", x.name, x.r.rate(),
			fmtDur(percentile(lat, 50)), fmtDur(percentile(lat, 99)), x.r.ok, x.r.errors())
	}
	for _, x := range rows {
		if x.r.errors() == 0 {
			continue
		}
		fmt.Fprintf(w, "errors in phase %s:\n", x.name)
		x.r.writeFailures(w, "  ")
		if x.r.unsent > 0 {
			fmt.Fprintf(w, "  %-40s %d\n", "not sent (backlog past the drain deadline)", x.r.unsent)
		}
	}
	for _, x := range rows {
		if x.r.polls > 0 {
			fmt.Fprintf(w, "phase %s: %d GETs followed a 303/302 to its receipt\n", x.name, x.r.polls)
		}
	}
	if signedLate > 0 {
		fmt.Fprintf(w, "warning: %d statements were signed during the load (the pre-signed pool ran dry); raise --presign-rate\n", signedLate)
	}
	fmt.Fprintf(w, "single-core ES256 verifies/s: %s\n", verifies)
	ratio := 0.0
	if verifies.median > 0 && len(rows) > 0 {
		ratio = rows[0].r.rate() / verifies.median
	}
	fmt.Fprintf(w, "ratio registrations/s ÷ single-core verifies/s: %.3f\n", ratio)
}

// fmtDur prints a latency with three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.3fs", d.Seconds())
	}
}
