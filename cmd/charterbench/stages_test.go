package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The breakdown is computed from two /metrics bodies recorded from a real
// dev node, before and after 614 registrations (charterbench --url, 1 s):
// each stage's growth per registration, its share of charterd's CPU, the
// background GC, and the rest as "other".
func TestStageBreakdownFromRecordedMetrics(t *testing.T) {
	before, err := parseStageMetrics(readTestdata(t, "metrics-before.txt"))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseStageMetrics(readTestdata(t, "metrics-after.txt"))
	if err != nil {
		t.Fatal(err)
	}
	b := breakdownOf(networkSample{stages: before}, networkSample{stages: after}, 614, 1)
	b.cpu = cpuUse{known: true, charterd: 500 * time.Millisecond, bench: 100 * time.Millisecond,
		machine: 1500 * time.Millisecond, cores: 2, wall: time.Second}
	var out bytes.Buffer
	writeBreakdown(&out, b)
	text := out.String()
	t.Log("\n" + text)
	for _, want := range []string{
		"server CPU per registration (phase 1): charterd 814.3µs (1 process), charterbench 162.9µs\n",
		"CPU over 1.0s of phase 1, in cores: machine busy 1.50 of 2, charterd 0.50, charterbench 0.10, other processes 0.90\n",
		"breakdown per registration (phase 1, 614 registrations, /metrics of 1 node):\n",
		// 0.065356128 s over 614 registrations, 13.1% of 0.5 s.
		"stage signature          106.44    13.1%      1.000  thread_cpu\n",
		"stage policy               0.00     0.0%      0.000  thread_cpu\n",
		// (0.015304298 - 0.000247778) s of GC without its assists.
		"stage gc                  24.52     3.0%          -  runtime estimate",
		// 814.33 - 463.55 (the stages) - 24.52.
		"stage other              326.26    40.1%          -  charterd CPU minus the rows above",
		// The store's counters' growth over 614 registrations, in KiB.
		"storage wal                    4.50\n",
		"storage flushed                1.50\n",
		"storage compacted              1.00\n",
		"storage compaction-read        2.00\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	// Stable row labels, in the order a registration meets the stages.
	var labels []string
	for _, m := range regexp.MustCompile(`(?m)^stage (\S+)`).FindAllStringSubmatch(text, -1) {
		labels = append(labels, m[1])
	}
	want := "decode chain signature policy receipt sequencing apply commit persist checkpoint gc gc-assist other"
	if got := strings.Join(labels, " "); got != want {
		t.Errorf("rows %q, want %q", got, want)
	}
	if strings.Contains(text, "note:") {
		t.Errorf("a note about rows exceeding the CPU, which they do not:\n%s", text)
	}

	// Without charterd's CPU (--url), the µs are printed and the shares
	// and "other" are not.
	b.cpu = cpuUse{}
	out.Reset()
	writeBreakdown(&out, b)
	if text := out.String(); !strings.Contains(text, "server CPU per registration (phase 1): unknown") ||
		!strings.Contains(text, "stage signature          106.44        -") || strings.Contains(text, "stage other") {
		t.Errorf("without the CPU:\n%s", text)
	}

	// Rows that add up to more than the CPU say what that means.
	b.cpu = cpuUse{known: true, charterd: 100 * time.Millisecond}
	out.Reset()
	writeBreakdown(&out, b)
	if text := out.String(); !strings.Contains(text, "note: the rows add up to more than charterd's CPU") {
		t.Errorf("rows above the CPU without a note:\n%s", text)
	}
}

// A node without the stage counters, a body that is not the text format,
// or a node that does not answer gives a clear message in place of the
// table, not a panic and not a table of zeros.
func TestStageBreakdownUnavailable(t *testing.T) {
	recorded := string(readTestdata(t, "metrics-after.txt"))
	var old []string
	for _, line := range strings.Split(recorded, "\n") {
		if !strings.Contains(line, "charter_stage_") {
			old = append(old, line)
		}
	}
	_, err := parseStageMetrics([]byte(strings.Join(old, "\n")))
	if err == nil || !strings.Contains(err.Error(), "no charter_stage_seconds_total") {
		t.Fatalf("a body without the stage counters: %v", err)
	}
	for _, bad := range []string{
		"charter_stage_seconds_total{stage=\"decode\",clock=\"thread_cpu\"} many\n",
		"charter_stage_seconds_total{stage=\"decode} 1\n",
		"charter_stage_seconds_total{clock=\"thread_cpu\"} 1\n",
		"charter_stage_seconds_total\n",
	} {
		if _, err := parseStageMetrics([]byte(bad)); err == nil {
			t.Errorf("parseStageMetrics(%q) succeeded", bad)
		}
	}
	// Label values may hold escaped quotes, commas and braces.
	s, err := parseStageMetrics([]byte(`charter_stage_seconds_total{clock="a\"b,}",stage="decode"} 2.5 1700000000000` + "\n"))
	if err != nil || s.stages["decode"].seconds != 2.5 || s.stages["decode"].clock != `a"b,}` {
		t.Fatalf("escaped label: %+v, %v", s, err)
	}
	// Without the runtime's GC classes the GC row says so.
	noGC, err := parseStageMetrics([]byte("charter_stage_seconds_total{stage=\"decode\",clock=\"thread_cpu\"} 1\n"))
	if err != nil || noGC.gcKnown {
		t.Fatalf("no GC metrics: gcKnown %v, %v", noGC.gcKnown, err)
	}
	var out bytes.Buffer
	writeBreakdown(&out, breakdownOf(networkSample{stages: noGC}, networkSample{stages: noGC}, 10, 1))
	if !regexp.MustCompile(`(?m)^stage gc +- .*unknown: /metrics has no go_cpu_classes_gc_total_cpu_seconds_total$`).MatchString(out.String()) {
		t.Errorf("without GC metrics:\n%s", out.String())
	}

	// Over HTTP: a node that answers 404, and one whose body is too big.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a/metrics":
			http.NotFound(w, r)
		case "/b/metrics":
			for range maxMetricsBytes/1024 + 1 {
				w.Write(bytes.Repeat([]byte("#"), 1024))
			}
		}
	}))
	defer srv.Close()
	for path, want := range map[string]string{"/a": "status 404", "/b": "more than 8388608 bytes"} {
		u, _ := url.Parse(srv.URL + path)
		_, err := scrapeStages(context.Background(), srv.Client(), []*url.URL{u})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
		out.Reset()
		writeBreakdown(&out, breakdown{registrations: 10, nodes: 1, err: err})
		if !strings.Contains(out.String(), "breakdown per registration unavailable: GET "+u.String()+"/metrics") || strings.Contains(out.String(), "stage decode") {
			t.Errorf("%s: printed\n%s", path, out.String())
		}
	}
}

// Each node's CPU and role come from its own /metrics; a cluster's
// breakdown prints them per node, and the busiest node's CPU per
// registration is what compareReport projects from.
func TestPerNodeCPU(t *testing.T) {
	node := func(cpu, leader string) stageSample {
		t.Helper()
		body := string(readTestdata(t, "metrics-before.txt"))
		body = regexp.MustCompile(`(?m)^process_cpu_seconds_total .*$`).ReplaceAllString(body, "process_cpu_seconds_total "+cpu)
		if leader != "" {
			body += "# TYPE charter_raft_is_leader gauge\ncharter_raft_is_leader " + leader + "\n"
		}
		s, err := parseStageMetrics([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sum := func(nodes ...stageSample) stageSample {
		var total stageSample
		for _, n := range nodes {
			total.nodes = append(total.nodes, n.nodes...)
		}
		return total
	}
	before := sum(node("10", "1"), node("20", "0"), node("30", "0"))
	after := sum(node("11.2", "1"), node("20.3", "0"), node("30.31", "0"))
	b := breakdown{registrations: 10000, nodes: 3, stages: after.since(before)}
	if got, want := perNodeRow(b.stages.nodes, 10000), "CPU per registration by node (phase 1, each node's /metrics): node 1 (leader) 120.0µs, node 2 (follower) 30.0µs, node 3 (follower) 31.0µs"; got != want {
		t.Errorf("per-node row %q, want %q", got, want)
	}
	if most, ok := busiest(b); !ok || most.Round(time.Microsecond) != 120*time.Microsecond {
		t.Errorf("busiest %v %t, want 120µs", most, ok)
	}
	// A node that exports no role (an older charterd): no row, no
	// projection.
	old := sum(node("11", "1"), node("21", ""))
	b = breakdown{registrations: 10000, nodes: 2, stages: old.since(sum(node("10", "1"), node("20", "")))}
	if row := perNodeRow(b.stages.nodes, 10000); row != "" {
		t.Errorf("a node without its role gave %q", row)
	}
	if _, ok := busiest(b); ok {
		t.Error("busiest is known with a node's CPU unknown")
	}
}
