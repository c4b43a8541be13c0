package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
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
	"github.com/charterlog/charter/internal/node"
)

// cluster starts (or reopens) a local network of N nodes as child
// processes, and stays in the foreground until Ctrl-C, when it stops them.
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
	snapshotEntries := fs.Uint64("snapshot-entries", 0, "raft entries kept for lagging followers before a snapshot is needed (default 10000)")
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
	for i := 1; i <= *nodes; i++ {
		cmd, err := startClusterNode(self, *dir, i)
		if err != nil {
			fmt.Fprintf(stderr, "charterd cluster: node %d: %v\n", i, err)
			status = 1
			stop()
			break
		}
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
	}
	if ctx.Err() == nil {
		urls, err := waitForURLs(ctx, *dir, *nodes)
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

// prepareCluster creates the network's identity and the nodes'
// configuration files, unless DIR already holds them (a reopened cluster).
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
	ports, err := freePorts(n)
	if err != nil {
		return err
	}
	peers := map[uint64]string{}
	for i, p := range ports {
		peers[uint64(i+1)] = "https://127.0.0.1:" + strconv.Itoa(p)
	}
	issuer := "charter:cluster:" + strings.TrimPrefix(peers[1], "https://")
	if err := node.CreateNetworkIdentity(dir, issuer); err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		nodeDir := filepath.Join(dir, fmt.Sprintf("node%d", i))
		if err := node.CopyNetworkIdentity(dir, nodeDir); err != nil {
			return err
		}
		abs, err := filepath.Abs(nodeDir)
		if err != nil {
			return err
		}
		cfg := config.Config{
			NodeID: uint64(i), DataDir: abs, Addr: "127.0.0.1:" + strconv.Itoa(ports[i-1]),
			Issuer: issuer, Peers: peers, LogLevel: logLevel, SnapshotEntries: snapshotEntries,
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

// freePorts asks the kernel for n free loopback ports. They are released
// before the nodes bind them; another process could take one in between,
// and the node that loses the race says so and exits.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func startClusterNode(self, dir string, i int) (*exec.Cmd, error) {
	logf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("node%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	nodeDir := filepath.Join(dir, fmt.Sprintf("node%d", i))
	_ = os.Remove(filepath.Join(nodeDir, "node.url"))
	cmd := exec.Command(self, "start", "--config", filepath.Join(dir, fmt.Sprintf("node%d.json", i)))
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

// waitForURLs waits until every node serves (writes its node.url) and
// writes DIR/nodes.txt.
func waitForURLs(ctx context.Context, dir string, n int) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	urls := make([]string, n)
	for i := 1; i <= n; i++ {
		for {
			b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d", i), "node.url"))
			if err == nil {
				urls[i-1] = strings.TrimSpace(string(b))
				break
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("node %d did not start serving in time; see %s", i, filepath.Join(dir, fmt.Sprintf("node%d.log", i)))
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	err := os.WriteFile(filepath.Join(dir, "nodes.txt"), []byte(strings.Join(urls, "\n")+"\n"), 0o644)
	return urls, err
}
