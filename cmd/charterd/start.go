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
	"github.com/charterlog/charter/internal/node"
)

// start runs one node of a network from its configuration file.
func start(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("charterd start", flag.ContinueOnError)
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
		fmt.Fprintln(stderr, "charterd start: --config is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "charterd start: %v\n", err)
		return 2
	}
	return runNode(cfg, *debugAddr, stderr, nil)
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
		if len(cfg.Peers) > 0 {
			fmt.Fprintln(stderr, "charterd join: the configuration lists bootstrap peers; a joining node must have none")
			return 2
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		ctx, cancel := context.WithTimeout(ctx, *timeout)
		id, err := node.JoinNetwork(ctx, cfg, *target)
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
	return runNode(cfg, "", stderr, nil)
}

// remove takes a node out of the network. It authenticates with the
// network identity in the data directory of the configuration given.
func remove(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("charterd remove", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "a configuration file whose data directory holds the network's service identity")
	target := fs.String("target", "", "base URL of any node of the network (followers forward to the leader)")
	id := fs.Uint64("node-id", 0, "the node to remove")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *path == "" || *target == "" || *id == 0 {
		fmt.Fprintln(stderr, "charterd remove: --config, --target and --node-id are required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "charterd remove: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := node.RemoveNode(ctx, cfg, *target, *id); err != nil {
		fmt.Fprintf(stderr, "charterd remove: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "charterd remove: node %d removed; its id will not be reused\n", *id)
	return 0
}
