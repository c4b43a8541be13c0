package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// `make bench`'s measurement, short: charterbench starts a real dev node
// (charterd dev on 127.0.0.1:0), warms it up for 1 s, loads it for 2 s and prints, besides the
// phase table and the ratio line scripts parse, the server CPU per
// registration and the breakdown by stage read from the node's /metrics:
// one row per stage, every request stage run once per registration, and
// the rows within the node's CPU.
func TestBenchPrintsStageBreakdown(t *testing.T) {
	if testing.Short() {
		t.Skip("a load run")
	}
	build := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./cmd/charterbench")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/charterbench: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "charterbench"), "--charterd", charterd,
		"--duration", "2s", "--warmup", "1s", "--publishers", "20", "--presign-rate", "3000", "--verify-time", "200ms")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("charterbench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	// The warm-up, as make bench runs it, registers on the real node and
	// is reported apart from the table.
	if m := regexp.MustCompile(`warm-up: ([0-9.]+) registrations/s, 0 failed`).FindStringSubmatch(stderr.String()); m == nil || m[1] == "0.0" {
		t.Errorf("no successful warm-up in stderr:\n%s", stderr.String())
	}
	for _, re := range []string{
		`(?m)^1 closed, 20 publishers +\d`,
		`(?m)^ratio registrations/s ÷ single-core verifies/s: \d`,
		`(?m)^server CPU per registration \(phase 1\): charterd \d+\.\dµs \(1 process\), charterbench \d+\.\dµs$`,
		`(?m)^CPU over \d+\.\ds of phase 1, in cores: machine busy \d+\.\d\d of \d+, charterd \d+\.\d\d, charterbench \d+\.\d\d, other processes \d+\.\d\d$`,
		`(?m)^breakdown per registration \(phase 1, \d+ registrations, /metrics of 1 node\):$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks a line matching %s", re)
		}
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "stage" {
			rows[f[1]] = f[2:]
		}
	}
	for _, stage := range []string{"decode", "chain", "signature", "policy", "receipt", "sequencing", "apply", "commit", "persist", "checkpoint", "gc", "other"} {
		if rows[stage] == nil {
			t.Errorf("no row for stage %s", stage)
		}
	}
	// Every registration ran the request's checks once (a refused request
	// would run them too, and none is expected here) and built at least
	// one receipt (one more for each GET that followed a 303, which a
	// slow run may need); no policy is in force.
	for _, stage := range []string{"decode", "chain", "signature"} {
		if r := rows[stage]; len(r) < 3 || r[2] != "1.000" {
			t.Errorf("stage %s: %v, want 1.000 runs per registration", stage, r)
		}
	}
	if r := rows["receipt"]; len(r) < 3 || r[2] < "1.000" || r[2] > "1.100" {
		t.Errorf("stage receipt: %v, want 1.000 to 1.100 runs per registration", r)
	}
	if r := rows["policy"]; len(r) < 3 || r[2] != "0.000" {
		t.Errorf("stage policy without a policy: %v", r)
	}
	// The signature check costs CPU, a share of charterd's.
	if r := rows["signature"]; len(r) >= 2 {
		us, err := strconv.ParseFloat(r[0], 64)
		share, err2 := strconv.ParseFloat(strings.TrimSuffix(r[1], "%"), 64)
		if err != nil || err2 != nil || us <= 0 || share <= 0 || share >= 100 {
			t.Errorf("stage signature: %v", r)
		}
	}
}
