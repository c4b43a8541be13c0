package stagetime

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestStageCountsAndExports(t *testing.T) {
	decode := New("decode", Wall)
	apply := New("apply", ThreadCPU)
	decode.Add(1500 * time.Millisecond)
	r := decode.Start()
	time.Sleep(500 * time.Millisecond)
	if d := r.Stop(); d < 500*time.Millisecond {
		t.Fatalf("a wall run around a 500ms sleep counted %v", d)
	}
	if d, n := decode.Total(); n != 2 || d < 2*time.Second || d > 3*time.Second {
		t.Fatalf("decode total %v over %d runs, want about 2s over 2", d, n)
	}
	apply.Add(250 * time.Millisecond)

	// Stages of different packages share the metric names: one registry
	// must take them all (their label values tell them apart).
	reg := prometheus.NewRegistry()
	if err := reg.Register(decode); err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(apply); err != nil {
		t.Fatalf("a second stage on the same registry: %v", err)
	}
	if err := reg.Register(New("decode", Wall)); err == nil {
		t.Fatal("two stages of one name were both registered: their counters would be summed by nobody")
	}
	clock := string(apply.Clock())
	want := `
# HELP charter_stage_runs_total How many times a stage of the node's work ran: once per registration for the request's stages, once per batch, raft Ready or checkpoint for the others.
# TYPE charter_stage_runs_total counter
charter_stage_runs_total{clock="` + clock + `",stage="apply"} 1
charter_stage_runs_total{clock="wall",stage="decode"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), RunsMetric); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seconds := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != SecondsMetric {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" {
					seconds[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if seconds["apply"] != 0.25 || seconds["decode"] < 2 || seconds["decode"] > 3 {
		t.Fatalf("%s: %v, want apply 0.25 and decode about 2", SecondsMetric, seconds)
	}
}

// A ThreadCPU stage counts the CPU its goroutine used, not the time it
// waited: a sleep counts next to nothing, where a Wall stage counts it all.
func TestThreadCPUCountsWorkNotWaiting(t *testing.T) {
	if !threadClock {
		t.Skip("no thread CPU clock here: ThreadCPU stages are Wall stages")
	}
	cpu, wall := New("persist", ThreadCPU), New("persist", Wall)
	if cpu.Clock() != ThreadCPU {
		t.Fatalf("clock %q", cpu.Clock())
	}
	r, w := cpu.Start(), wall.Start()
	time.Sleep(100 * time.Millisecond)
	w.Stop()
	r.Stop()
	slept, _ := cpu.Total()
	waited, _ := wall.Total()
	if waited < 100*time.Millisecond {
		t.Fatalf("wall stage counted %v of a 100ms sleep", waited)
	}
	if slept > 20*time.Millisecond {
		t.Fatalf("thread CPU stage counted %v of a 100ms sleep", slept)
	}

	busy := New("apply", ThreadCPU)
	r = busy.Start()
	spin(30 * time.Millisecond)
	r.Stop()
	if d, n := busy.Total(); n != 1 || d < 5*time.Millisecond {
		t.Fatalf("thread CPU stage counted %v over %d runs of ≥ 30ms of thread CPU", d, n)
	}
}

// spin uses at least d of the thread's CPU.
func spin(d time.Duration) {
	start := threadNow()
	x := 0
	for threadNow()-start < d {
		for i := range 10000 {
			x += i
		}
	}
	runtime.KeepAlive(x)
}

// A Sampler counts every run of every stage and times one run in
// SampleEvery, scaled up: the total estimates the time of all runs.
func TestSamplerCountsEveryRunTimesOneInN(t *testing.T) {
	if !threadClock {
		t.Skip("no thread CPU clock here")
	}
	var p Sampler
	work, idle := New("signature", ThreadCPU), New("receipt", ThreadCPU)
	const runs = 4 * SampleEvery
	for range runs {
		sp := p.Begin()
		spin(200 * time.Microsecond)
		sp.Lap(work)
		time.Sleep(time.Millisecond) // waiting: no CPU
		sp.Lap(idle)
		sp.End()
		sp.End() // a second End does nothing
	}
	d, n := work.Total()
	if n != runs {
		t.Fatalf("work ran %d times, want %d", n, runs)
	}
	// Each run used at least 200µs of CPU; the estimate of all runs (four
	// samples × SampleEvery) is at least that much in all, and not wildly
	// more (a sampled run's thread also ran the clock's system calls).
	if min := time.Duration(runs) * 200 * time.Microsecond; d < min || d > 20*min {
		t.Fatalf("work estimated at %v for %d runs of ≥ 200µs of CPU", d, runs)
	}
	if d, n := idle.Total(); n != runs || d > time.Duration(runs)*100*time.Microsecond {
		t.Fatalf("a sleep counted %v of CPU over %d runs", d, n)
	}
}

// A stage that resumes after another ran inside it (apply around its
// store commit) counts its own time only, and one run.
func TestSplitExcludesTheInnerStage(t *testing.T) {
	if !threadClock {
		t.Skip("no thread CPU clock here")
	}
	outer, inner := New("apply", ThreadCPU), New("commit", ThreadCPU)
	sp := NewSampler(1).Begin()
	spin(2 * time.Millisecond)
	sp.Split(outer)
	spin(10 * time.Millisecond)
	sp.Lap(inner)
	spin(2 * time.Millisecond)
	sp.Finish(outer)
	o, on := outer.Total()
	i, in := inner.Total()
	if on != 1 || in != 1 {
		t.Fatalf("runs: outer %d, inner %d; want 1 each", on, in)
	}
	if o < 4*time.Millisecond || o >= 8*time.Millisecond || i < 10*time.Millisecond {
		t.Fatalf("outer %v (want 4ms and a little), inner %v (want 10ms and a little)", o, i)
	}
}

// BenchmarkRequestStages is what the request stages cost one
// registration on average: a sampler's count, five stages' runs, and on
// one request in SampleEvery a thread lock and six thread clock reads
// (registry's decode, chain, signature, policy, receipt). Compare with a
// registration's server CPU (about 165 µs): under 1% is under 1.65 µs.
func BenchmarkRequestStages(b *testing.B) {
	var p Sampler
	stages := []*Stage{New("decode", ThreadCPU), New("chain", ThreadCPU), New("signature", ThreadCPU), New("policy", ThreadCPU), New("receipt", ThreadCPU)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			sp := p.Begin()
			for _, s := range stages {
				sp.Lap(s)
			}
			sp.End()
		}
	})
}

// BenchmarkThreadCPUStage is one ThreadCPU run (a raft Ready's persist or
// apply, a sequencer batch): lock, two thread clock reads, unlock. It runs
// once per batch of registrations, not per registration.
func BenchmarkThreadCPUStage(b *testing.B) {
	s := New("apply", ThreadCPU)
	b.ReportAllocs()
	for b.Loop() {
		s.Start().Stop()
	}
}

// BenchmarkRequestStagesShare puts the request stages' cost beside one
// ES256 verification, the least a registration costs (about 64 µs of some
// 165 µs of the node's CPU): it reports the instrumentation of one
// request as a percentage of one verification (metric
// %-of-one-ES256-verify), so under 1% of a verification is well under 1%
// of a registration.
func BenchmarkRequestStagesShare(b *testing.B) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	d := sha256.Sum256([]byte("statement"))
	sig, err := ecdsa.SignASN1(rand.Reader, k, d[:])
	if err != nil {
		b.Fatal(err)
	}
	var p Sampler
	stages := []*Stage{New("decode", ThreadCPU), New("chain", ThreadCPU), New("signature", ThreadCPU), New("policy", ThreadCPU), New("receipt", ThreadCPU)}
	var verify, stage time.Duration
	for b.Loop() {
		t := time.Now()
		if !ecdsa.VerifyASN1(&k.PublicKey, d[:], sig) {
			b.Fatal("verify")
		}
		t1 := time.Now()
		// A request's whole instrumentation, SampleEvery times over, so
		// that the sampled run's cost is in the mean.
		for range SampleEvery {
			sp := p.Begin()
			for _, s := range stages {
				sp.Lap(s)
			}
			sp.End()
		}
		verify += t1.Sub(t)
		stage += time.Since(t1) / SampleEvery
	}
	b.ReportMetric(100*float64(stage)/float64(verify), "%-of-one-ES256-verify")
}
