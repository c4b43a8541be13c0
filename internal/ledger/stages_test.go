package ledger_test

import (
	"context"
	"testing"
	"time"

	"github.com/charterlog/charter/internal/stagetime"
	"github.com/prometheus/client_golang/prometheus"
)

// The ledger's stages (sequencing, apply, commit, checkpoint) and the raft
// loop's persist stage count the work of registrations, each once per
// batch, Ready or checkpoint, on the thread CPU clock (timing a sample).
func TestLedgerStagesCounted(t *testing.T) {
	n := startNode(t, t.TempDir())
	defer n.stop(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 50 {
		id, err := n.l.Register(ctx, entryFor(i), []byte{byte(i)}, [32]byte{})
		if err != nil {
			t.Fatal(err)
		}
		if err := n.l.WaitCovered(ctx, id.Seqno); err != nil {
			t.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(n.l.Collectors()...)
	reg.MustRegister(n.r.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	runs, seconds, clocks := map[string]float64{}, map[string]float64{}, map[string]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var stage, clock string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "stage":
					stage = l.GetValue()
				case "clock":
					clock = l.GetValue()
				}
			}
			switch mf.GetName() {
			case stagetime.RunsMetric:
				runs[stage] = m.GetCounter().GetValue()
				clocks[stage] = clock
			case stagetime.SecondsMetric:
				seconds[stage] = m.GetCounter().GetValue()
			}
		}
	}
	for _, stage := range []string{"sequencing", "apply", "commit", "checkpoint", "persist"} {
		// Fifty registrations one after another: at least one batch, Ready
		// and checkpoint each, and never more runs than registrations
		// need (50 batches and checkpoints; raft's Readys more).
		if runs[stage] < 1 {
			t.Errorf("stage %s ran %v times (all: %v)", stage, runs[stage], runs)
		}
		if want := string(stagetime.New("x", stagetime.ThreadCPU).Clock()); clocks[stage] != want {
			t.Errorf("stage %s has clock %q, want %q", stage, clocks[stage], want)
		}
	}
	if runs["sequencing"] > 50 || runs["checkpoint"] > 50 {
		t.Errorf("runs %v: more batches or checkpoints than registrations", runs)
	}
	if seconds["apply"]+seconds["commit"]+seconds["persist"] <= 0 {
		t.Errorf("seconds %v: applying and storing 50 registrations took no CPU", seconds)
	}
}
