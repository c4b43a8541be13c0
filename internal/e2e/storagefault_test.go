package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/fault"
)

// Disks that start failing writes under load (Pebble on an errorfs that
// fails every write after the first few hundred): the node stops rather
// than go on with raft and its disk disagreeing, and once restarted on a
// good disk it rejoins with everything that was acknowledged. First one
// follower's disk fails; then every node's, the leader's included, so the
// network stops, and all restart.
func TestStorageWriteError(t *testing.T) {
	c := startCluster(t, 3, clusterOpts{})
	pub := newPublisher(t, "e2e storage fault publisher")
	h := &history{}
	var mu sync.Mutex
	// load registers through the nodes in via until stop closes.
	load := func(stop <-chan struct{}, via ...int) *sync.WaitGroup {
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					mu.Lock()
					stmt := pub.unique(t)
					mu.Unlock()
					o := c.register(stmt, 5*time.Second, via[(g+k)%len(via)])
					mu.Lock()
					h.add(o)
					mu.Unlock()
				}
			}()
		}
		return &wg
	}
	waitExit := func(who string, ids ...int) {
		t.Helper()
		deadline := time.After(90 * time.Second)
		for _, i := range ids {
			select {
			case <-c.node(i).doneCh():
			case <-deadline:
				t.Fatalf("%s: node %d's failing disk did not stop it within 90s", who, i)
			}
			if c.node(i).exitErr() == nil {
				t.Fatalf("%s: node %d exited cleanly on a failing disk", who, i)
			}
		}
	}

	follower := 3
	if lead, _ := c.leader(); lead == 3 {
		follower = 2
	}
	c.stop(follower)
	c.node(follower).nextEnv = []string{fault.EnvCrashAt + "=" + fault.StorageWriteError}
	c.restart(follower)
	var others []int
	for i := 1; i <= 3; i++ {
		if i != follower {
			others = append(others, i)
		}
	}
	stop := make(chan struct{})
	wg := load(stop, others...)
	waitExit("one follower", follower)
	close(stop)
	wg.Wait()
	c.restart(follower)
	c.waitSettled(60*time.Second, 1, 2, 3)
	mu.Lock()
	n1 := len(h.acked())
	mu.Unlock()
	if n1 == 0 {
		t.Fatal("nothing was acknowledged while the follower's disk failed")
	}

	// Every disk fails: the network stops.
	for i := 1; i <= 3; i++ {
		c.stop(i)
	}
	for i := 1; i <= 3; i++ {
		c.node(i).nextEnv = []string{fault.EnvCrashAt + "=" + fault.StorageWriteError}
		c.node(i).start()
	}
	for i := 1; i <= 3; i++ {
		c.node(i).waitHealthy(30 * time.Second)
	}
	stop = make(chan struct{})
	wg = load(stop, 1, 2, 3)
	// Whichever two disks fail first stop the network: the third node then
	// writes too little to reach its own failure.
	eventually(t, 90*time.Second, "every node: two of 3 nodes stop on their failing disks", func() error {
		down := 0
		for i := 1; i <= 3; i++ {
			if !c.node(i).alive() {
				if c.node(i).exitErr() == nil {
					t.Fatalf("every node: node %d exited cleanly on a failing disk", i)
				}
				down++
			}
		}
		if down < 2 {
			return fmt.Errorf("%d down", down)
		}
		return nil
	})
	close(stop)
	wg.Wait()
	for i := 1; i <= 3; i++ {
		c.node(i).killQuietly()
	}
	for i := 1; i <= 3; i++ {
		c.node(i).start()
	}
	for i := 1; i <= 3; i++ {
		c.node(i).waitHealthy(30 * time.Second)
	}
	c.waitSettled(60*time.Second, 1, 2, 3)
	acked := h.acked()
	t.Logf("%d registrations acknowledged (%d before every disk failed); every one is on all three nodes", len(acked), n1)
	checkEntries(t, c, acked, 1, 2, 3)
	checkSameTree(t, c, 1, 2, 3)
}
