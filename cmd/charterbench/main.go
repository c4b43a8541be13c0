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
//	phase 1  closed loop: --publishers each send the next statement as soon
//	         as the previous one has its receipt, for --duration
//	phase 2  open loop: arrivals paced at half the phase-1 rate for
//	         --duration; latency counts from the scheduled arrival
//	phase 3  one goroutine verifying one ES256 signature for --verify-time
//
// Failures are counted by status and problem title and always printed.
package main

import (
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
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
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
	payloadBytes int
	keys         int
	presignRate  int
	maxWait      time.Duration
	verifyTime   time.Duration
	startTimeout time.Duration
	logLevel     string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("charterbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.charterd, "charterd", "", "path to a charterd binary: start a fresh dev node in a temporary directory and stop it at the end")
	fs.StringVar(&o.url, "url", "", "base URL of a running node (loopback), instead of --charterd")
	fs.StringVar(&o.cacert, "cacert", "", "the service certificate (PEM) to pin, with --url")
	// Closed-loop throughput is publishers ÷ latency (Little's law), and a
	// receipt waits for the next checkpoint (50 ms by default), so measuring
	// capacity rather than the checkpoint cadence takes hundreds of publishers.
	fs.IntVar(&o.publishers, "publishers", 400, "concurrent publishers, each with its own keep-alive HTTPS connection")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each load phase")
	fs.IntVar(&o.payloadBytes, "payload-bytes", 1024, "payload size of each statement")
	fs.IntVar(&o.keys, "keys", 8, "distinct ES256 publisher keys and chains")
	fs.IntVar(&o.presignRate, "presign-rate", 20000, "statements signed ahead for phase 1, per second of --duration")
	fs.DurationVar(&o.maxWait, "max-wait", 30*time.Second, "longest one registration may take (POST and polls) before it counts as a timeout")
	fs.DurationVar(&o.verifyTime, "verify-time", 2*time.Second, "length of the single-core ES256 verify measurement")
	fs.DurationVar(&o.startTimeout, "start-timeout", 60*time.Second, "how long to wait for a started charterd to serve")
	fs.StringVar(&o.logLevel, "charterd-log-level", "warn", "--log-level for a started charterd (its log stays in the temporary directory)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
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
	case o.presignRate < 0:
		return o, errors.New("--presign-rate must not be negative")
	}
	if o.url != "" {
		u, err := url.Parse(o.url)
		if err != nil || u.Scheme != "https" || !isLoopback(u.Hostname()) {
			return o, fmt.Errorf("--url %q: charterbench loads loopback https URLs only", o.url)
		}
	}
	return o, nil
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

func bench(ctx context.Context, o options, stdout, stderr io.Writer) (err error) {
	s, err := newSigner(o.keys, o.payloadBytes)
	if err != nil {
		return err
	}
	n1 := max(int(math.Ceil(float64(o.presignRate)*o.duration.Seconds())), o.publishers)
	t := time.Now()
	fmt.Fprintf(stderr, "signing %d statements for phase 1 (%d keys, %d-byte payloads)…\n", n1, o.keys, o.payloadBytes)
	pool1, err := s.presign(n1)
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "signed in %s\n", time.Since(t).Round(time.Millisecond))

	var (
		base  *url.URL
		roots *x509.CertPool
		// stopNode stops a node this run started (nil for --url); it is
		// called before phase 3 so the node does not compete for the CPU,
		// and by the deferred cleanup if a phase fails first.
		stopNode func() error
	)
	if o.charterd != "" {
		fmt.Fprintf(stderr, "starting %s dev --addr 127.0.0.1:0…\n", o.charterd)
		d, b, r, err := startDaemon(ctx, o.charterd, []string{"--log-level", o.logLevel}, o.startTimeout)
		if err != nil {
			return err
		}
		base, roots = b, r
		stopped := false
		stopNode = func() error {
			if stopped {
				return nil
			}
			stopped = true
			return d.stop()
		}
		defer func() {
			if serr := stopNode(); serr != nil && err == nil {
				err = serr
			}
		}()
		fmt.Fprintf(stderr, "charterd serving at %s\n", base)
	} else {
		if base, err = url.Parse(strings.TrimSuffix(o.url, "/")); err != nil {
			return err
		}
		if roots, err = loadRoots(o.cacert); err != nil {
			return err
		}
		if err := waitHealthy(ctx, base, roots, 10*time.Second); err != nil {
			return err
		}
	}

	clients := make([]*http.Client, o.publishers)
	for i := range clients {
		clients[i] = newClient(roots)
	}
	defer func() {
		for _, c := range clients {
			c.CloseIdleConnections()
		}
	}()
	// Connect every publisher before the clock starts: the TLS handshakes
	// are not what the phases measure.
	if err := warmUp(ctx, base, clients); err != nil {
		return err
	}

	cfg := loadConfig{base: base, clients: clients, pool: pool1, duration: o.duration, maxWait: o.maxWait}
	fmt.Fprintf(stderr, "phase 1: closed loop, %d publishers, %s…\n", o.publishers, o.duration)
	r1 := runClosed(ctx, cfg)
	late1 := pool1.signed.Load()
	rows := []row{{name: fmt.Sprintf("1 closed, %d publishers", o.publishers), r: r1}}

	var late2 int64
	target := r1.rate() / 2
	if target*o.duration.Seconds() >= 1 && ctx.Err() == nil {
		n2 := int(math.Ceil(target*o.duration.Seconds())) + o.publishers
		fmt.Fprintf(stderr, "signing %d statements for phase 2…\n", n2)
		pool2, err := s.presign(n2)
		if err != nil {
			return err
		}
		cfg.pool = pool2
		fmt.Fprintf(stderr, "phase 2: open loop at %.1f/s, %s…\n", target, o.duration)
		r2 := runOpen(ctx, cfg, target)
		late2 = pool2.signed.Load()
		rows = append(rows, row{name: fmt.Sprintf("2 open at %.1f/s", target), r: r2})
	} else {
		fmt.Fprintln(stderr, "phase 2 skipped: phase 1 registered too little to pace half of it")
	}

	if stopNode != nil {
		if err := stopNode(); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "phase 3: single-core ES256 verify, %s…\n", o.verifyTime)
	vps, err := verifyRate(o.verifyTime)
	if err != nil {
		return err
	}
	report(stdout, rows, vps, late1+late2)
	if r1.ok == 0 {
		return errors.New("phase 1 registered nothing; see the errors above")
	}
	return nil
}

// warmUp makes each client open its connection with GET /node/health.
func warmUp(ctx context.Context, base *url.URL, clients []*http.Client) error {
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(rctx, http.MethodGet, base.JoinPath("node", "health").String(), nil)
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
func report(w io.Writer, rows []row, verifiesPerSec float64, signedLate int64) {
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
		kinds := make([]string, 0, len(x.r.failures))
		for k := range x.r.failures {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			fmt.Fprintf(w, "  %-40s %d\n", k, x.r.failures[k])
		}
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
	fmt.Fprintf(w, "single-core ES256 verifies/s: %.0f\n", verifiesPerSec)
	ratio := 0.0
	if verifiesPerSec > 0 && len(rows) > 0 {
		ratio = rows[0].r.rate() / verifiesPerSec
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
