package replication

import (
	"github.com/charterlog/charter/internal/stagetime"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	persist            prometheus.Histogram
	apply              prometheus.Histogram
	snapshotsSent      prometheus.Counter
	snapshotsInstalled prometheus.Counter
	logBytes           prometheus.Gauge
	// persistStage is the CPU this node's Ready loop spends persisting
	// (encoding and committing raft's entries and hard state to Pebble),
	// for the registration path's breakdown (stagetime): the thread's CPU
	// clock, as the fsync's wait is not CPU, timed in one Ready in 8 (a
	// timed one wakes from the fsync more slowly: stagetime.Sampler).
	// Pebble's own goroutines (the WAL's writes and sync, flushes,
	// compactions) are not in it.
	persistStage *stagetime.Stage
	persisting   *stagetime.Sampler
}

var loopBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25}

func newMetrics() metrics {
	return metrics{
		persist: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "charter_raft_persist_seconds", Help: "Time to persist one Ready's hard state and entries (including fsync).", Buckets: loopBuckets}),
		apply:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "charter_raft_apply_seconds", Help: "Time to apply one Ready's committed entries to the ledger.", Buckets: loopBuckets}),
		snapshotsSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "charter_raft_snapshots_sent_total",
			Help: "Snapshots this node sent to a follower and the follower accepted (each a full image of the ledger)."}),
		snapshotsInstalled: prometheus.NewCounter(prometheus.CounterOpts{Name: "charter_raft_snapshots_installed_total",
			Help: "Snapshots this node installed, replacing its state."}),
		logBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "charter_raft_log_bytes",
			Help: "Approximate payload bytes of the raft log this node holds (retention accounting)."}),
		persistStage: stagetime.New("persist", stagetime.ThreadCPU),
		persisting:   stagetime.NewSampler(8),
	}
}

// Collectors returns the replication metrics for the node's registry.
func (n *Node) Collectors() []prometheus.Collector {
	isLeader := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "charter_raft_is_leader",
		Help: "1 if this node is the leader as far as it knows, else 0."}, func() float64 {
		if leader, _ := n.Leader(); leader {
			return 1
		}
		return 0
	})
	return []prometheus.Collector{n.metrics.persist, n.metrics.apply, n.metrics.snapshotsSent, n.metrics.snapshotsInstalled, n.metrics.logBytes, n.metrics.persistStage, isLeader}
}
