// Command charterd runs a Charter node.
//
//	charterd dev --data DIR --addr 127.0.0.1:8000
//
// creates (or reopens) a single-node development network in DIR: one
// generated member, TLS with a self-signed service certificate written to
// DIR/service_cert.pem.
//
//	charterd cluster --nodes 3 --data DIR
//
// starts a local multi-node development network as child processes: the
// first node creates it, the others join it by attestation.
//
//	charterd create --config FILE
//	charterd start --config FILE
//	charterd join --config FILE --target URL
//	charterd recover --config FILE --ledger DIR --previous-service-cert PEM
//
// create a network (its first node) in an empty data directory, reopen a
// node from its configuration file, or add a new node to a running network.
// Only create makes a network: start refuses a data directory that holds
// none, so a mistyped path cannot fork a network under the same name.
// recover starts a new network that continues a lost one's ledger files
// under a new service identity (spec/operations.md).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/fault"
	"github.com/charterlog/charter/internal/node"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	switch args[0] {
	case "dev":
		return dev(args[1:], stderr)
	case "create":
		return create(args[1:], stderr)
	case "start":
		return start(args[1:], stderr)
	case "join":
		return join(args[1:], stderr)
	case "cluster":
		return cluster(args[1:], stderr)
	case "recover":
		return recoverNetwork(args[1:], stderr)
	default:
		fmt.Fprintf(stderr, "charterd: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

const usage = `usage:
  charterd dev --data DIR --addr HOST:PORT [flags]   single-node development network (created or reopened)
  charterd cluster --nodes 3 --data DIR              local multi-node development network (child processes)
  charterd create --config FILE                      create a network: its first node, in an empty data directory
  charterd start --config FILE                       reopen a node of an existing network
  charterd join --config FILE --target URL           add a new node to a running network
  charterd recover --config FILE --ledger DIR --previous-service-cert PEM
                                                     start a new network that continues a lost one's ledger files

Nodes are taken out of a network by governance (the remove_node proposal).

Run 'charterd COMMAND -h' for a command's flags.
`

func dev(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("charterd dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg config.Config
	var algs, cas string
	fs.StringVar(&cfg.DataDir, "data", "", "data directory (created if missing)")
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8000", "HTTPS listen address; port 0 picks one and writes DIR/node.url")
	fs.StringVar(&cfg.Issuer, "issuer", "", "service name in receipts and checkpoints, fixed at creation (default charter:ADDR)")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.DurationVar(&cfg.CheckpointInterval, "checkpoint-interval", 0, "longest wait for a checkpoint (default 50ms)")
	fs.Uint64Var(&cfg.CheckpointMaxTx, "checkpoint-max-tx", 0, "checkpoint after this many uncovered transactions (default 5000)")
	fs.DurationVar(&cfg.RegistrationWait, "registration-wait", 0, "how long POST /entries waits for the receipt before 303 (default 5s)")
	fs.IntVar(&cfg.Registration.MaxStatementBytes, "max-statement-bytes", 0, "largest accepted signed statement, at creation (default 1 MiB)")
	fs.IntVar(&cfg.BatchMaxStatements, "batch-max-statements", 0, "most signed statements in one POST /entries/batch (default 1000)")
	fs.IntVar(&cfg.BatchMaxBytes, "batch-max-bytes", 0, "largest POST /entries/batch body in bytes (default 32 MiB)")
	fs.StringVar(&algs, "algorithms", "", "comma-separated accepted algorithms, at creation (default all: ES256,ES384,ES512,PS256,PS384,PS512,EdDSA)")
	fs.StringVar(&cas, "trusted-ca", "", "comma-separated SHA-256 hex fingerprints of accepted x5chain roots, at creation (default: any chain that verifies)")
	debugAddr := fs.String("debug-addr", "", "serve Go's pprof on this loopback address (e.g. 127.0.0.1:0); off by default")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if algs != "" {
		cfg.Registration.AllowedAlgs = strings.Split(algs, ",")
	}
	if cas != "" {
		cfg.Registration.TrustedCAs = strings.Split(cas, ",")
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "charterd dev: %v\n", err)
		return 2
	}
	// A development network: the node's virtual platform is approved.
	cfg.Development = true
	return runNode(cfg, node.CreateOrReopen, *debugAddr, stderr, func(n *node.Node) { printWelcome(os.Stdout, n.URL(), cfg.DataDir) })
}

// nodeProcs is the GOMAXPROCS a node runs with: one more than the
// runtime's default (the CPUs it may use), or 0 to leave it, when the
// operator set GOMAXPROCS. Under load a node's Pebble goroutines are often
// in write and sync system calls, and a P stays with its thread in the
// kernel until the runtime hands it off. On two cores, `make bench`'s
// batch load left the machine about 12% idle with the default; with one
// more P it was 7–8% idle, and four alternating pairs of runs gave a
// median 11,200 registrations/s against 10,100, with the same CPU per
// registration.
func nodeProcs(env string, def int) int {
	if env != "" {
		return 0
	}
	return def + 1
}

// runNode runs one node until SIGINT or SIGTERM. onServing is called once
// it serves.
func runNode(cfg config.Config, mode node.Mode, debugAddr string, stderr io.Writer, onServing func(*node.Node)) int {
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()})).With("node_id", cfg.NodeID)
	if os.Getenv("GOGC") == "" && cfg.GCPercent != 0 { // 0 only if cfg was never validated
		debug.SetGCPercent(cfg.GCPercent)
	}
	if n := nodeProcs(os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)); n > 0 {
		runtime.GOMAXPROCS(n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if debugAddr != "" {
		if err := serveDebug(debugAddr, logger); err != nil {
			logger.Error("cannot serve pprof", "err", err)
			return 1
		}
	}
	if err := fault.Check(); err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	n, err := node.Open(cfg, mode, logger)
	if err != nil {
		logger.Error("cannot start", "err", err)
		return 1
	}
	go func() {
		select {
		case <-n.Serving():
			if onServing != nil {
				onServing(n)
			}
		case <-ctx.Done():
		}
	}()
	if err := n.Run(ctx); err != nil {
		logger.Error("stopped with an error", "err", err)
		return 1
	}
	logger.Info("stopped")
	return 0
}

// printWelcome tells a newcomer what to do next, on stdout; the structured
// log stays on stderr.
func printWelcome(w io.Writer, url, dir string) {
	cert := filepath.Join(dir, "service_cert.pem")
	fmt.Fprintf(w, `Charter dev network serving at %[1]s
  service certificate (pin it): %[2]s
  member identity:              %[3]s, %[4]s

Register and verify a statement (in another terminal):
  go build -o bin/ ./cmd/...
  bin/charter keygen --out publisher
  echo '{"name":"demo","version":"1.0"}' > sbom.json
  bin/charter sign --key publisher/key.pem --x5chain publisher/chain.pem --subject pkg:demo@1.0 --content-type application/spdx+json --out sbom.cose sbom.json
  bin/charter register --url %[1]s --cacert %[2]s --out sbom.ts.cose sbom.cose
  bin/charter keys --url %[1]s --cacert %[2]s --out service-keys.cbor
  bin/charter verify --service-keys service-keys.cbor --payload sbom.json sbom.ts.cose

Stop with Ctrl-C; the same command reopens this network.
`, url, cert, filepath.Join(dir, "member0_cert.pem"), filepath.Join(dir, "member0_privk.pem"))
}
