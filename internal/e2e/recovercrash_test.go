package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/config"
	"github.com/charterlog/charter/internal/fault"
)

// TestRecoverCrash: `charterd recover` killed at each step of the recovery
// (mid-import, imported but not in place, in place but never run, running
// before the recovery transaction) leaves a data directory that a re-run
// completes (or, once the node ran, that `charterd start` completes),
// with exactly one recovery recorded.
func TestRecoverCrash(t *testing.T) {
	c := startCluster(t, 1, clusterOpts{LedgerChunkTransactions: 10})
	pub := newPublisher(t, "e2e recover crash publisher")
	for range 6 {
		c.mustRegister(pub.unique(t), 1)
	}
	c.waitSettled(30*time.Second, 1)
	c.stop(1)
	files := t.TempDir()
	copyDir(t, filepath.Join(c.node(1).dataDir, "ledger"), files)

	for _, point := range []string{fault.RecoverImportHalf, fault.RecoverImported, fault.RecoverRenamed, fault.RecoverBeforeRecord} {
		t.Run(point, func(t *testing.T) {
			dir := t.TempDir()
			cfg := config.Config{NodeID: 1, DataDir: filepath.Join(dir, "data"), Addr: "127.0.0.1:" + strconv.Itoa(freeLoopbackPorts(t, 1)[0]), LogLevel: "info"}
			cfgPath := filepath.Join(dir, "node.json")
			if err := config.Write(cfgPath, cfg); err != nil {
				t.Fatal(err)
			}
			recoverArgs := []string{"recover", "--config", cfgPath, "--ledger", files, "--previous-service-cert", c.certPath}
			cmd := exec.Command(charterd, recoverArgs...)
			cmd.Env = append(os.Environ(), fault.EnvCrashAt+"="+point)
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("charterd recover with %s armed: %v, want killed at the point\n%s", point, err, out)
			}
			_, storeErr := os.Stat(filepath.Join(cfg.DataDir, "store"))
			if inPlace := storeErr == nil; inPlace != (point == fault.RecoverRenamed || point == fault.RecoverBeforeRecord) {
				t.Fatalf("after a crash at %s the store is in place: %v", point, inPlace)
			}
			var n *node
			if point == fault.RecoverBeforeRecord {
				// The node ran, but whether raft had stored its first
				// state before the crash is a race. With raft state,
				// recover refuses (start the node); without, nothing was
				// recorded and recover resumes and runs the node. Either
				// way `charterd start` then runs the recovered network.
				urlFile := filepath.Join(cfg.DataDir, "node.url")
				os.Remove(urlFile)
				var rerunOut bytes.Buffer
				rerun := exec.Command(charterd, recoverArgs...)
				rerun.Stdout, rerun.Stderr = &rerunOut, &rerunOut
				if err := rerun.Start(); err != nil {
					t.Fatal(err)
				}
				exited := make(chan error, 1)
				go func() { exited <- rerun.Wait() }()
				var (
					rerunErr error
					refused  bool
				)
				eventually(t, 60*time.Second, "the re-run of recover to refuse or to serve", func() error {
					select {
					case rerunErr = <-exited:
						refused = true
						return nil
					default:
					}
					if _, err := os.Stat(urlFile); err == nil {
						return nil
					}
					return errors.New("still starting")
				})
				if refused {
					if rerunErr == nil || !strings.Contains(rerunOut.String(), "charterd start") {
						t.Fatalf("recover over a node that ran: %v\n%s", rerunErr, rerunOut.String())
					}
				} else {
					t.Logf("the crash came before raft stored its state: recover resumed")
					rerun.Process.Signal(syscall.SIGTERM)
					<-exited
				}
				n = runCharterd(t, cfg.DataDir, filepath.Join(dir, "node.log"), "start", "--config", cfgPath)
			} else {
				n = runCharterd(t, cfg.DataDir, filepath.Join(dir, "node.log"), recoverArgs...)
			}
			var nw struct {
				Status       string            `json:"service_status"`
				Endorsements []json.RawMessage `json:"service_identity_endorsements"`
			}
			if err := json.Unmarshal(n.get(t, "/node/network").Body, &nw); err != nil {
				t.Fatal(err)
			}
			if nw.Status != "Recovering" || len(nw.Endorsements) != 1 {
				t.Fatalf("after a crash at %s and the re-run: %s with %d recoveries", point, nw.Status, len(nw.Endorsements))
			}
			if _, err := os.Stat(filepath.Join(cfg.DataDir, "recovery_pending.json")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the recovery marker outlived the recovery: %v", err)
			}
			n.Stop()
		})
	}
}
