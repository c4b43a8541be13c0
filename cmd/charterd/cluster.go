package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/loopback"
)

// cluster starts (or reopens) a local development network of N nodes as
// child processes, and stays in the foreground until Ctrl-C, when it stops
// them. Node 1 creates the network (`charterd create`); every other node
// joins it by attestation (`charterd join`), as a node of any network does,
// so no data directory is copied from another. The network is created
// Opening, so that the joining nodes are trusted on their attestation;
// member0 then opens it (transition_service_to_open).
//
// Files in DIR, which scripts and tests rely on:
//
//	nodes.txt                  one base URL per line, node 1 first
//	service_cert.pem           the certificate clients pin
//	member0_cert.pem, member0_privk.pem
//	nodeN.json                 node N's configuration: restart a node by hand
//	                           with `charterd start --config DIR/nodeN.json`
//	nodeN.pid                  node N's process id
//	nodeN.log                  node N's log
//	nodeN/                     node N's data directory
func cluster(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("charterd cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	nodes := fs.Int("nodes", 3, "how many nodes")
	dir := fs.String("data", "", "directory for the network's files and the nodes' data")
	logLevel := fs.String("log-level", "info", "the nodes' log level")
	snapshotEntries := fs.Uint64("snapshot-entries", 0, "if set, a follower more raft entries behind than this is sent a snapshot (default 0: bounded only by raft_log_retention and raft_log_retention_bytes)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *dir == "" || *nodes < 1 || *nodes > 9 {
		fmt.Fprintln(stderr, "charterd cluster: --data is required and --nodes must be 1 to 9")
		return 2
	}
	if err := prepareCluster(*dir, *nodes, *logLevel, *snapshotEntries); err != nil {
		fmt.Fprintf(stderr, "charterd cluster: %v\n", err)
		return 1
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "charterd cluster: %v\n", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	status := 0
	var (
		mu    sync.Mutex
		procs []*exec.Cmd
		wg    sync.WaitGroup
	)
	// Nodes start one after another: each joiner needs the first node up.
	urls := make([]string, *nodes)
	for i := 1; i <= *nodes && ctx.Err() == nil; i++ {
		cmd, err := startClusterNode(self, *dir, i, urls[0])
		if err == nil {
			mu.Lock()
			procs = append(procs, cmd)
			mu.Unlock()
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				err := cmd.Wait()
				if ctx.Err() == nil {
					fmt.Fprintf(stderr, "charterd cluster: node %d exited (%v); restart it with: charterd start --config %s\n", i, err, filepath.Join(*dir, fmt.Sprintf("node%d.json", i)))
				}
			}(i)
			urls[i-1], err = waitForURL(ctx, *dir, i)
		}
		if err == nil && i == 1 {
			err = publishNetworkFiles(*dir)
		}
		if err != nil {
			fmt.Fprintf(stderr, "charterd cluster: node %d: %v\n", i, err)
			status = 1
			stop()
		}
	}
	if ctx.Err() == nil {
		err := openCluster(ctx, *dir, urls[0])
		if err == nil {
			err = os.WriteFile(filepath.Join(*dir, "nodes.txt"), []byte(strings.Join(urls, "\n")+"\n"), 0o644)
		}
		if err != nil {
			fmt.Fprintf(stderr, "charterd cluster: %v\n", err)
			status = 1
			stop()
		} else {
			fmt.Fprintf(os.Stdout, "Charter cluster of %d nodes serving:\n  %s\nservice certificate: %s\nStop with Ctrl-C.\n",
				*nodes, strings.Join(urls, "\n  "), filepath.Join(*dir, "service_cert.pem"))
		}
	}
	<-ctx.Done()
	mu.Lock()
	for _, p := range procs {
		_ = p.Process.Signal(syscall.SIGTERM)
	}
	mu.Unlock()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		mu.Lock()
		for _, p := range procs {
			_ = p.Process.Kill()
		}
		mu.Unlock()
		<-done
	}
	return status
}

// prepareCluster writes the nodes' configuration files, unless DIR
// already holds them (a reopened cluster). Node 1's creates a development
// network that opens by vote; the others' node id (the default, 1, until
// then) is replaced by the one the network gives when `charterd join`
// records it.
func prepareCluster(dir string, n int, logLevel string, snapshotEntries uint64) error {
	if _, err := os.Stat(filepath.Join(dir, "node1.json")); err == nil {
		existing, _ := filepath.Glob(filepath.Join(dir, "node[0-9].json"))
		if len(existing) != n {
			return fmt.Errorf("%s holds a network of %d nodes; reopen it with --nodes %d, or use another --data", dir, len(existing), len(existing))
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	ports, err := loopback.Ports(n)
	if err != nil {
		return err
	}
	issuer := "charter:cluster:127.0.0.1:" + strconv.Itoa(ports[0])
	for i := 1; i <= n; i++ {
		abs, err := filepath.Abs(filepath.Join(dir, fmt.Sprintf("node%d", i)))
		if err != nil {
			return err
		}
		cfg := config.Config{
			DataDir: abs, Addr: "127.0.0.1:" + strconv.Itoa(ports[i-1]),
			LogLevel: logLevel, SnapshotEntries: snapshotEntries,
		}
		if i == 1 {
			cfg.NodeID, cfg.Issuer, cfg.Development, cfg.OpenByVote = 1, issuer, true, true
		}
		if err := cfg.Validate(); err != nil {
			return err
		}
		if err := config.Write(filepath.Join(dir, fmt.Sprintf("node%d.json", i)), cfg); err != nil {
			return err
		}
	}
	return nil
}

// publishNetworkFiles copies what node 1 created and others need into DIR:
// the service certificate (public) and member0's identity.
func publishNetworkFiles(dir string) error {
	for _, f := range []struct {
		name string
		perm os.FileMode
	}{{"service_cert.pem", 0o644}, {"member0_cert.pem", 0o644}, {"member0_privk.pem", 0o600}} {
		b, err := os.ReadFile(filepath.Join(dir, "node1", f.name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), b, f.perm); err != nil {
			return err
		}
	}
	return nil
}

// startClusterNode starts node i: node 1 creates the network the first
// time; a node that has not joined yet joins through node 1 (at first);
// any other reopens.
func startClusterNode(self, dir string, i int, first string) (*exec.Cmd, error) {
	cfgPath := filepath.Join(dir, fmt.Sprintf("node%d.json", i))
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return nil, err
	}
	args := []string{"start", "--config", cfgPath}
	switch {
	case i == 1:
		if _, err := os.Stat(filepath.Join(cfg.DataDir, "store")); err != nil {
			args[0] = "create"
		}
	case !cfg.Join:
		// The joiner pins the network's certificate, which is public.
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, err
		}
		b, err := os.ReadFile(filepath.Join(dir, "service_cert.pem"))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(cfg.DataDir, "service_cert.pem"), b, 0o644); err != nil {
			return nil, err
		}
		args = []string{"join", "--config", cfgPath, "--target", first}
	}
	logf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("node%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	_ = os.Remove(filepath.Join(cfg.DataDir, "node.url"))
	cmd := exec.Command(self, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pid := []byte(strconv.Itoa(cmd.Process.Pid) + "\n")
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("node%d.pid", i)), pid, 0o644); err != nil {
		return cmd, err
	}
	return cmd, nil
}

// waitForURL waits until node i serves (writes its node.url).
func waitForURL(ctx context.Context, dir string, i int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cfg, err := config.Load(filepath.Join(dir, fmt.Sprintf("node%d.json", i)))
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, "node.url"))
		if err == nil {
			return strings.TrimSpace(string(b)), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("did not start serving in time; see %s", filepath.Join(dir, fmt.Sprintf("node%d.log", i)))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
