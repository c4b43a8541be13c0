package replication

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	persist prometheus.Histogram
	apply   prometheus.Histogram
}

var loopBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25}

func newMetrics() metrics {
	return metrics{
		persist: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "charter_raft_persist_seconds", Help: "Time to persist one Ready's hard state and entries (including fsync).", Buckets: loopBuckets}),
		apply:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "charter_raft_apply_seconds", Help: "Time to apply one Ready's committed entries to the ledger.", Buckets: loopBuckets}),
	}
}

// Collectors returns the replication metrics for the node's registry.
func (n *Node) Collectors() []prometheus.Collector {
	return []prometheus.Collector{n.metrics.persist, n.metrics.apply}
}
