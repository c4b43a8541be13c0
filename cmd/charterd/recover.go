package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/fault"
	"github.com/charterlog/charter/internal/node"
	"github.com/charterlog/charter/internal/restore"
)

// recoverNetwork starts a new network that continues a previous one's
// ledger: it verifies and imports the ledger files (restore.Import),
// then runs the node, which records the recovery under a new service
// identity and serves as Recovering until the members open it.
func recoverNetwork(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("charterd recover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the new node's configuration file (JSON; see spec/operations.md); its data directory must be empty")
	ledgerDir := fs.String("ledger", "", "the previous network's ledger files (a node's DATA/ledger, or `charter ledger download`)")
	prevPath := fs.String("previous-service-cert", "", "the previous network's service certificate (PEM): the ledger must end with this identity")
	debugAddr := fs.String("debug-addr", "", "serve Go's pprof on this loopback address; off by default")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *path == "" || *ledgerDir == "" || *prevPath == "" {
		fmt.Fprintln(stderr, "charterd recover: --config, --ledger and --previous-service-cert are required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "charterd recover: %v\n", err)
		return 2
	}
	prev, err := os.ReadFile(*prevPath)
	if err != nil {
		fmt.Fprintf(stderr, "charterd recover: --previous-service-cert: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.SlogLevel()})).With("node_id", cfg.NodeID)
	if err := fault.Check(); err != nil {
		fmt.Fprintf(stderr, "charterd recover: %v\n", err)
		return 1
	}
	rep, err := restore.Import(cfg, *ledgerDir, prev, logger)
	if err != nil {
		fmt.Fprintf(stderr, "charterd recover: %v\n", err)
		return 1
	}
	if rep.Resumed {
		fmt.Fprintf(stderr, "charterd recover: %s holds the imported ledger (%d transactions) from an earlier run; completing the recovery\n", cfg.DataDir, rep.Transactions)
	} else {
		fmt.Fprintf(stderr, "charterd recover: imported %d transactions of %s (%d after the newest checkpoint, signed by nothing, left out)\n", rep.Transactions, rep.Issuer, rep.Dropped)
	}
	// The recovered service keeps its name: receipts and checkpoints name it.
	cfg.Issuer = rep.Issuer
	return runNode(cfg, node.Recovered, *debugAddr, stderr, nil)
}
