package e2e

import (
	"errors"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/fault"
)

// A follower that crashes at each step of a snapshot install (the image
// staged; the install's marker durable; the old state wiped and the image
// half written; the install durable) restarts and rejoins every time with
// nothing lost: the store completes an interrupted install from the staged
// image, so the node never comes back with less than it acknowledged (an
// empty log used to make raft panic on the leader's next heartbeat, in a
// crash loop for as long as that leader led).
func TestSnapshotInstallCrash(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{SnapshotEntries: 20, CheckpointInterval: 10 * time.Millisecond})
	pub := newPublisher(t, "e2e snapshot crash publisher")
	h := &history{}
	reg := oneByOne(t, c, pub, h)
	reg(10, 1, 2, 3)
	follower := 3
	if lead, _ := c.leader(); lead == 3 {
		follower = 2
	}
	m := c.node(follower)
	for _, point := range []string{fault.SnapshotStaged, fault.SnapshotMarked, fault.SnapshotHalfWritten, fault.SnapshotInstalled} {
		c.stop(follower)
		var up []int
		for i := 1; i <= 3; i++ {
			if i != follower {
				up = append(up, i)
			}
		}
		reg(150, up...) // far more raft entries than snapshot_entries: a snapshot is needed
		// Restart it armed: it crashes at the point, as kill -9 would.
		m.nextEnv = []string{fault.EnvCrashAt + "=" + point}
		m.start()
		select {
		case <-m.doneCh():
		case <-time.After(60 * time.Second):
			t.Fatalf("%s: node %d did not reach the crash point within 60s", point, follower)
		}
		var ee *exec.ExitError
		if err := m.exitErr(); !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("%s: node %d exited with %v, not by its crash point's SIGKILL", point, follower, err)
		}
		// Restarted plainly, it must rejoin and catch up.
		c.restart(follower)
		c.waitSettled(60*time.Second, 1, 2, 3)
		if point == fault.SnapshotMarked || point == fault.SnapshotHalfWritten {
			if !c.logContains(follower, "completing a snapshot install that a crash interrupted") {
				t.Errorf("%s: node %d did not complete the interrupted install from the staged image", point, follower)
			}
		}
		if c.logContains(follower, "tocommit(") || strings.Contains(tailFile(m.logPath, 200), "panic") {
			t.Fatalf("%s: node %d's raft panicked after the crash", point, follower)
		}
		reg(5, follower, 1, 2, 3)
	}
	c.waitSettled(30*time.Second, 1, 2, 3)
	acked := h.acked()
	if len(acked) != 10+4*(150+5) {
		t.Fatalf("%d acknowledged registrations, want %d", len(acked), 10+4*155)
	}
	checkEntries(t, c, acked, follower, 1, 2, 3)
	checkSameTree(t, c, 1, 2, 3)
}
