package store

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports Pebble's own accounting of the store at each scrape: what
// the node's writes cost the disk after the write itself (the WAL, memtable
// flushes, compactions) and what the store holds. Pebble's background work is
// a large part of a registration's cost and runs on Pebble's goroutines, where
// no stage timer sees it; these bytes, divided by the registrations of a run,
// are its measure (charterbench prints them as the storage rows).
func (s *Store) Collector() prometheus.Collector { return storeCollector{s} }

type storeCollector struct{ s *Store }

var (
	descWAL = prometheus.NewDesc("charter_store_wal_bytes_written_total",
		"Bytes written to the store's write-ahead log.", nil, nil)
	descFlushed = prometheus.NewDesc("charter_store_flushed_bytes_total",
		"Bytes of tables written by memtable flushes.", nil, nil)
	descCompacted = prometheus.NewDesc("charter_store_compacted_bytes_total",
		"Bytes of tables (and blob files) written by compactions.", nil, nil)
	descCompactRead = prometheus.NewDesc("charter_store_compaction_read_bytes_total",
		"Bytes of tables read by compactions.", nil, nil)
	descFlushes = prometheus.NewDesc("charter_store_flushes_total",
		"Memtable flushes.", nil, nil)
	descCompactions = prometheus.NewDesc("charter_store_compactions_total",
		"Compactions, of every kind (moves included).", nil, nil)
	descDisk = prometheus.NewDesc("charter_store_disk_bytes",
		"Disk space the store uses (tables, blob files, WAL, manifests).", nil, nil)
	descBlob = prometheus.NewDesc("charter_store_blob_bytes",
		"Disk space of the blob files, where the store keeps large values (statements) apart from their keys.", nil, nil)
	descStalls = prometheus.NewDesc("charter_store_write_stalls_total",
		"Times Pebble held the node's writes back because flushes or compactions were behind.", nil, nil)
	descStallTime = prometheus.NewDesc("charter_store_write_stall_seconds_total",
		"Time the node's writes were held back by Pebble (a stall in progress counts up to now).", nil, nil)
	descL0 = prometheus.NewDesc("charter_store_l0_tables",
		"Tables in level 0: many means compactions are behind the writes.", nil, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descWAL, descFlushed, descCompacted, descCompactRead, descFlushes, descCompactions, descDisk, descBlob, descStalls, descStallTime, descL0} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.s.db.Metrics()
	var flushed, compacted, read uint64
	for i := range m.Levels {
		l := &m.Levels[i]
		flushed += l.TableBytesFlushed + l.BlobBytesFlushed
		compacted += l.TableBytesCompacted + l.BlobBytesCompacted
		read += l.TableBytesRead + l.BlobBytesReadEstimate
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter(descWAL, float64(m.WAL.BytesWritten))
	counter(descFlushed, float64(flushed))
	counter(descCompacted, float64(compacted))
	counter(descCompactRead, float64(read))
	counter(descFlushes, float64(m.Flush.Count))
	counter(descCompactions, float64(m.Compact.Count))
	gauge(descDisk, float64(m.DiskSpaceUsage()))
	stalls, stalled := c.s.stalls.read(time.Now())
	counter(descStalls, float64(stalls))
	counter(descStallTime, stalled.Seconds())
	gauge(descBlob, float64(m.BlobFiles.LiveSize))
	gauge(descL0, float64(m.Levels[0].TablesCount))
}

// stallClock counts Pebble's write stalls and their time, from its
// WriteStallBegin and WriteStallEnd events.
type stallClock struct {
	mu      sync.Mutex
	count   uint64
	total   time.Duration
	started time.Time // zero when no stall is in progress
}

func (c *stallClock) begin() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started.IsZero() {
		c.count++
		c.started = time.Now()
	}
}

func (c *stallClock) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.started.IsZero() {
		c.total += time.Since(c.started)
		c.started = time.Time{}
	}
}

// read is the stalls so far and their time, a stall in progress counted
// up to now.
func (c *stallClock) read(now time.Time) (uint64, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.total
	if !c.started.IsZero() {
		t += now.Sub(c.started)
	}
	return c.count, t
}
