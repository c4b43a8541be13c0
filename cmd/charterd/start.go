package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/joinclient"
	"github.com/charterlog/charter/internal/node"
)

// create creates a network: its service identity and genesis, on its first
// node, in a data directory that holds no network; then runs that node.
func create(args []string, stderr io.Writer) int {
	return runFromConfig("create", node.Create, args, stderr)
}

// start reopens one node of an existing network from its configuration
// file; it refuses a data directory that holds no network.
func start(args []string, stderr io.Writer) int {
	return runFromConfig("start", node.Reopen, args, stderr)
}

func runFromConfig(name string, mode node.Mode, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("charterd "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the node's configuration file (JSON; see spec/operations.md)")
	debugAddr := fs.String("debug-addr", "", "serve Go's pprof on this loopback address; off by default")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *path == "" {
		fmt.Fprintf(stderr, "charterd %s: --config is required\n", name)
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "charterd %s: %v\n", name, err)
		return 2
	}
	return runNode(cfg, mode, *debugAddr, stderr, nil)
}

// join adds a new node to a running network: it asks the network at
// --target for a node id, records it (and that the node joined) in the
// configuration file, and runs the node, which catches up as a learner and
// is promoted to voter once caught up.
func join(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("charterd join", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the new node's configuration file (JSON); its data directory must hold the network's service certificate (service_cert.pem); the secrets arrive by attested release once the network trusts the node")
	target := fs.String("target", "", "base URL of any node of the network")
	timeout := fs.Duration("timeout", time.Minute, "how long to keep asking the network")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *path == "" || *target == "" {
		fmt.Fprintln(stderr, "charterd join: --config and --target are required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "charterd join: %v\n", err)
		return 2
	}
	if !cfg.Join {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		id, err := joinclient.JoinNetwork(ctx, cfg, *target)
		cancel()
		stop()
		if err != nil {
			fmt.Fprintf(stderr, "charterd join: %v\n", err)
			return 1
		}
		cfg.NodeID, cfg.Join = id, true
		if err := config.Write(*path, cfg); err != nil {
			fmt.Fprintf(stderr, "charterd join: recording node id %d in %s: %v\n", id, *path, err)
			return 1
		}
		fmt.Fprintf(stderr, "charterd join: joined as node %d; restart with: charterd start --config %s\n", id, *path)
	}
	return runNode(cfg, node.Reopen, "", stderr, nil)
}
