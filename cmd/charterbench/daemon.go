package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// daemon is a charterd dev node, or a `charterd cluster` launcher and its
// nodes, this run started in a temporary directory.
type daemon struct {
	cmd     *exec.Cmd
	dir     string
	logPath string
	exited  chan struct{}
	waitErr error
	// stopSig is what stop sends (SIGTERM for a dev node, SIGINT for the
	// cluster launcher, as Ctrl-C would), and stopWithin how long it waits
	// before it kills.
	stopSig    os.Signal
	stopWithin time.Duration
	// nodes > 0 for a cluster: its nodes' logs and pid files are
	// data/nodeN.{log,pid}.
	nodes int
}

// launch runs PATH ARGS in a new temporary directory with its output in
// DIR/charterd.log.
func launch(path string, args func(dir string) []string) (*daemon, error) {
	dir, err := os.MkdirTemp("", "charterbench-")
	if err != nil {
		return nil, err
	}
	d := &daemon{dir: dir, logPath: filepath.Join(dir, "charterd.log"), exited: make(chan struct{}),
		stopSig: syscall.SIGTERM, stopWithin: 15 * time.Second}
	logf, err := os.Create(d.logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d.cmd = exec.Command(path, args(dir)...)
	d.cmd.Stdout = logf
	d.cmd.Stderr = logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		logf.Close()
		close(d.exited)
	}()
	return d, nil
}

// startDaemon runs `PATH dev --data TMP --addr 127.0.0.1:0` and waits for
// TMP/node.url (written once the node listens). It returns the base URL
// and the pinned service certificate.
func startDaemon(ctx context.Context, path string, extra []string, startTimeout time.Duration) (*daemon, *url.URL, *x509.CertPool, error) {
	d, err := launch(path, func(dir string) []string {
		return append([]string{"dev", "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0"}, extra...)
	})
	if err != nil {
		return nil, nil, nil, err
	}
	dir := d.dir

	fail := func(err error) (*daemon, *url.URL, *x509.CertPool, error) {
		// The tail is read before stop removes the directory.
		logs := d.logTail(20)
		d.stop()
		return nil, nil, nil, fmt.Errorf("%w\n%s", err, logs)
	}
	urlPath := filepath.Join(dir, "data", "node.url")
	deadline := time.Now().Add(startTimeout)
	for {
		if b, err := os.ReadFile(urlPath); err == nil && len(bytes.TrimSpace(b)) > 0 {
			base, err := url.Parse(strings.TrimSpace(string(b)))
			if err != nil || base.Scheme != "https" || base.Host == "" {
				return fail(fmt.Errorf("%s holds %q, not an https URL", urlPath, b))
			}
			roots, err := loadRoots(filepath.Join(dir, "data", "service_cert.pem"))
			if err != nil {
				return fail(err)
			}
			if err := waitHealthy(ctx, base, roots, time.Until(deadline)); err != nil {
				return fail(err)
			}
			return d, base, roots, nil
		}
		select {
		case <-d.exited:
			return fail(fmt.Errorf("charterd exited before writing %s: %v", urlPath, d.waitErr))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("charterd did not write %s within %s", urlPath, startTimeout))
		}
	}
}

// startCluster runs `PATH cluster --nodes N --data TMP/data`, waits for
// TMP/data/nodes.txt (written once every node listens) and for every node
// to be healthy (serving and knowing a leader). It returns the nodes' base
// URLs, node 1 first, and the pinned service certificate.
func startCluster(ctx context.Context, path string, n int, extra []string, startTimeout time.Duration) (*daemon, []*url.URL, *x509.CertPool, error) {
	d, err := launch(path, func(dir string) []string {
		return append([]string{"cluster", "--nodes", strconv.Itoa(n), "--data", filepath.Join(dir, "data")}, extra...)
	})
	if err != nil {
		return nil, nil, nil, err
	}
	// The launcher gives its nodes 20 s after SIGTERM before it kills them.
	d.stopSig, d.stopWithin, d.nodes = os.Interrupt, 30*time.Second, n
	fail := func(err error) (*daemon, []*url.URL, *x509.CertPool, error) {
		// The tail is read before stop removes the directory.
		logs := d.logTail(20)
		d.stop()
		return nil, nil, nil, fmt.Errorf("%w\n%s", err, logs)
	}
	listPath := filepath.Join(d.dir, "data", "nodes.txt")
	deadline := time.Now().Add(startTimeout)
	for {
		if b, err := os.ReadFile(listPath); err == nil && strings.HasSuffix(string(b), "\n") {
			lines := strings.Fields(string(b))
			if len(lines) != n {
				return fail(fmt.Errorf("%s lists %d nodes, want %d", listPath, len(lines), n))
			}
			urls, err := parseURLs(strings.Join(lines, ","))
			if err != nil {
				return fail(fmt.Errorf("%s: %w", listPath, err))
			}
			roots, err := loadRoots(filepath.Join(d.dir, "data", "service_cert.pem"))
			if err != nil {
				return fail(err)
			}
			for _, u := range urls {
				if err := waitHealthy(ctx, u, roots, time.Until(deadline)); err != nil {
					return fail(err)
				}
			}
			return d, urls, roots, nil
		}
		select {
		case <-d.exited:
			return fail(fmt.Errorf("charterd cluster exited before writing %s: %v", listPath, d.waitErr))
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("charterd cluster did not write %s within %s", listPath, startTimeout))
		}
	}
}

// waitHealthy polls GET /node/health until 200.
func waitHealthy(ctx context.Context, base *url.URL, roots *x509.CertPool, within time.Duration) error {
	c := newClient(roots)
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(within)
	var last string
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		req, _ := http.NewRequestWithContext(rctx, http.MethodGet, base.JoinPath("node", "health").String(), nil)
		resp, err := c.Do(req)
		if err == nil {
			_, status, _, _ := drain(resp)
			cancel()
			if status == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("status %d", status)
		} else {
			cancel()
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s/node/health not ready within %s: %s", base, within, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends stopSig, waits up to stopWithin for a clean exit, then kills
// the process (and, for a cluster, the nodes it started, by the ids in
// their pid files), and removes the directory. It reports an unclean exit.
func (d *daemon) stop() error {
	var err error
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Signal(d.stopSig)
		select {
		case <-d.exited:
			if d.waitErr != nil {
				err = fmt.Errorf("charterd exited after %v: %v", d.stopSig, d.waitErr)
			}
		case <-time.After(d.stopWithin):
			_ = d.cmd.Process.Kill()
			<-d.exited
			err = fmt.Errorf("charterd did not stop within %s of %v; killed", d.stopWithin, d.stopSig)
		}
	}
	if d.nodes > 0 {
		// A launcher that was killed, or died, leaves its nodes running.
		if n := d.killNodes(); n > 0 && err == nil {
			err = fmt.Errorf("%d cluster nodes were still running after the launcher stopped; killed", n)
		}
	}
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, d.logTail(20))
	}
	os.RemoveAll(d.dir)
	return err
}

// killNodes kills every cluster node whose pid file names a live process
// and returns how many it killed.
func (d *daemon) killNodes() int {
	killed := 0
	for i := 1; i <= d.nodes; i++ {
		b, err := os.ReadFile(filepath.Join(d.dir, "data", fmt.Sprintf("node%d.pid", i)))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		// Signal 0 tells whether the process is still there.
		if syscall.Kill(pid, 0) == nil && syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	return killed
}

// logTail returns the last n lines of charterd's log, and of each cluster
// node's log, for error messages.
func (d *daemon) logTail(n int) string {
	out := tail("charterd", d.logPath, n)
	for i := 1; i <= d.nodes; i++ {
		out += "\n" + tail(fmt.Sprintf("node %d", i), filepath.Join(d.dir, "data", fmt.Sprintf("node%d.log", i)), n)
	}
	return out
}

func tail(name, path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return "(" + name + " wrote no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return name + " log (last lines):\n  " + strings.Join(lines, "\n  ")
}

func loadRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("service certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("service certificate: no PEM certificate in %s", path)
	}
	return roots, nil
}
