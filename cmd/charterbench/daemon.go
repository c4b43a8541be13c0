package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// daemon is a charterd dev node this run started in a temporary directory.
type daemon struct {
	cmd     *exec.Cmd
	dir     string
	logPath string
	exited  chan struct{}
	waitErr error
}

// startDaemon runs `PATH dev --data TMP --addr 127.0.0.1:0` and waits for
// TMP/node.url (written once the node listens). It returns the base URL
// and the pinned service certificate.
func startDaemon(ctx context.Context, path string, extra []string, startTimeout time.Duration) (*daemon, *url.URL, *x509.CertPool, error) {
	dir, err := os.MkdirTemp("", "charterbench-")
	if err != nil {
		return nil, nil, nil, err
	}
	d := &daemon{dir: dir, logPath: filepath.Join(dir, "charterd.log"), exited: make(chan struct{})}
	logf, err := os.Create(d.logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, nil, err
	}
	args := append([]string{"dev", "--data", filepath.Join(dir, "data"), "--addr", "127.0.0.1:0"}, extra...)
	d.cmd = exec.Command(path, args...)
	d.cmd.Stdout = logf
	d.cmd.Stderr = logf
	if err := d.cmd.Start(); err != nil {
		logf.Close()
		os.RemoveAll(dir)
		return nil, nil, nil, fmt.Errorf("starting %s: %w", path, err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		logf.Close()
		close(d.exited)
	}()

	fail := func(err error) (*daemon, *url.URL, *x509.CertPool, error) {
		d.stop()
		return nil, nil, nil, fmt.Errorf("%w\n%s", err, d.logTail(20))
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

// stop sends SIGTERM, waits up to 15 s for a clean exit, then kills the
// process, and removes the directory. It reports an unclean exit.
func (d *daemon) stop() error {
	var err error
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
			if d.waitErr != nil {
				err = fmt.Errorf("charterd exited after SIGTERM: %v", d.waitErr)
			}
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.exited
			err = errors.New("charterd did not stop within 15 s of SIGTERM; killed")
		}
	}
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, d.logTail(20))
	}
	os.RemoveAll(d.dir)
	return err
}

// logTail returns the last n lines of charterd's log, for error messages.
func (d *daemon) logTail(n int) string {
	b, err := os.ReadFile(d.logPath)
	if err != nil || len(b) == 0 {
		return "(charterd wrote no log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "charterd log (last lines):\n  " + strings.Join(lines, "\n  ")
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
