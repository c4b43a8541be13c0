package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{0.9}, 0.9},
		{[]float64{0.97, 0.88, 0.95}, 0.95},
		{[]float64{1, 0.9, 0.8, 0.96}, 0.93},
	} {
		in := append([]float64(nil), tc.in...)
		if got := median(tc.in); got < tc.want-1e-9 || got > tc.want+1e-9 {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("median reordered its argument: %v", tc.in)
			}
		}
	}
}

// Rounds alternate which side runs first, so a drift over the run does not
// always favour the same side.
func TestPolicyFirstAlternates(t *testing.T) {
	var got []bool
	for r := range 4 {
		got = append(got, policyFirst(r))
	}
	if want := []bool{false, true, false, true}; !slices.Equal(got, want) {
		t.Fatalf("policyFirst(0..3) = %v, want %v", got, want)
	}
}

// phase1 is a measurement whose phase 1 registered ok statements in one
// second.
func phase1(label string, order, ok int) measurement {
	return measurement{label: label, order: order, rows: []row{{r: result{ok: ok, elapsed: time.Second}}}}
}

func TestRoundsReport(t *testing.T) {
	rounds := []round{
		{base: phase1("no policy", 0, 1000), other: phase1("policy", 1, 940)},
		{base: phase1("no policy", 3, 1000), other: phase1("policy", 2, 990)},
		{base: phase1("no policy", 4, 0), other: phase1("policy", 5, 10)},
	}
	if got := ratios(rounds); got[0] != 0.94 || got[1] != 0.99 || got[2] != 0 {
		t.Fatalf("ratios = %v, want [0.94 0.99 0] (0 when the base registered nothing)", got)
	}
	var b strings.Builder
	roundsReport(&b, rounds, "with policy ÷ without policy registrations/s", 0.95)
	out := b.String()
	for _, want := range []string{
		"no policy", "policy",
		"1      base first", "2      variant first",
		"0.940", "0.990",
		"median ratio with policy ÷ without policy registrations/s (phase 1, 3 rounds): 0.940 (min 0.000, max 0.990; aim ≥ 0.95)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

func TestRoundsOptions(t *testing.T) {
	pol := filepath.Join(t.TempDir(), "p.js")
	if err := os.WriteFile(pol, []byte("export function apply() { return true; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"--charterd", "x", "--rounds", "3"},
		{"--charterd", "x", "--compare", "--rounds", "0"},
		{"--charterd", "x", "--policy", pol, "--compare-policy", "--rounds", "-1"},
	} {
		if _, err := parseOptions(args, io.Discard); err == nil {
			t.Errorf("parseOptions(%q) accepted", args)
		}
	}
	o, err := parseOptions([]string{"--charterd", "x", "--policy", pol, "--compare-policy", "--rounds", "3"}, io.Discard)
	if err != nil || o.rounds != 3 {
		t.Errorf("--compare-policy --rounds 3: %+v, %v", o.rounds, err)
	}
	if o, err := parseOptions([]string{"--charterd", "x", "--compare"}, io.Discard); err != nil || o.rounds != 1 {
		t.Errorf("default rounds: %d, %v; want 1", o.rounds, err)
	}
}

// --compare --rounds 2 starts a fresh node and cluster for each round and
// reports both rounds and their median.
func TestCompareRounds(t *testing.T) {
	record := filepath.Join(t.TempDir(), "record")
	t.Setenv(fakeEnv, record)
	var stdout, stderr strings.Builder
	code := run(context.Background(), []string{
		"--charterd", os.Args[0], "--compare", "--nodes", "2", "--rounds", "2", "--publishers", "4", "--duration", "200ms",
		"--keys", "2", "--payload-bytes", "100", "--presign-rate", "2000", "--verify-time", "100ms",
	}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"== round 1, one node", "== round 1, 2 nodes", "== round 2, one node", "== round 2, 2 nodes",
		"median ratio 2-node ÷ one-node registrations/s (phase 1, 2 rounds): "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	rec, err := os.ReadFile(record)
	if err != nil {
		t.Fatal(err)
	}
	if starts := strings.Count(string(rec), "cluster 2 data "); starts != 2 {
		t.Errorf("clusters started: %d, want 2\n%s", starts, rec)
	}
}

func TestParseProcStatCPU(t *testing.T) {
	// Fields 14 (utime) and 15 (stime) are 250 and 50 ticks; the command
	// name holds a space and a parenthesis.
	stat := "4242 (charterd (x) dev) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 12 0 100 0 0"
	if d, ok := parseProcStatCPU(stat); !ok || d != 3*time.Second {
		t.Fatalf("parseProcStatCPU = %v, %v; want 3s", d, ok)
	}
	for _, bad := range []string{"", "4242 charterd S 1", "4242 (charterd) S 1 2 3", "4242 (c) S 1 2 3 4 5 6 7 8 9 10 x 0"} {
		if _, ok := parseProcStatCPU(bad); ok {
			t.Errorf("parseProcStatCPU(%q) succeeded", bad)
		}
	}
	if _, ok := processCPU(os.Getpid()); !ok && runtime.GOOS == "linux" {
		t.Error("processCPU of this process failed")
	}
}

func TestRoundsReportCPU(t *testing.T) {
	base, other := phase1("no policy", 0, 1000), phase1("policy", 1, 1000)
	base.cpu, other.cpu = 80*time.Millisecond, 84*time.Millisecond
	var b strings.Builder
	roundsReport(&b, []round{{base: base, other: other}}, "with policy ÷ without policy registrations/s", 0.95)
	out := b.String()
	for _, want := range []string{"80.0µs", "84.0µs", "median ratio of charterd CPU per registration, no policy ÷ policy: 0.952"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	other.cpu = 0
	roundsReport(&b, []round{{base: base, other: other}}, "x", 0.95)
	if strings.Contains(b.String(), "CPU") {
		t.Errorf("CPU reported without a measurement:\n%s", b.String())
	}
}
