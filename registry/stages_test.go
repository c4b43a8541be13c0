package registry_test

import (
	"bytes"
	"fmt"
	"net/http"
	"testing"

	"github.com/charterlog/charter/internal/stagetime"
	"github.com/charterlog/charter/policy"
	"github.com/charterlog/charter/registry"
	"github.com/prometheus/client_golang/prometheus"
)

// stageRuns gathers the service's collectors and returns each stage's run
// count and seconds.
func stageRuns(t *testing.T, svc *registry.Service) (runs, seconds map[string]float64) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(svc.Collectors()...)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	runs, seconds = map[string]float64{}, map[string]float64{}
	for _, mf := range mfs {
		var into map[string]float64
		switch mf.GetName() {
		case stagetime.RunsMetric:
			into = runs
		case stagetime.SecondsMetric:
			into = seconds
		default:
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" {
					into[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	return runs, seconds
}

// Each registration request counts one run of each stage it reached: a
// statement with a bad signature is decoded and its issuer and signature
// checked, but gets no receipt; the policy stage runs only with a policy.
// Every run is counted; the time of one in stagetime.SampleEvery.
func TestRegistrationStagesCounted(t *testing.T) {
	e := newEnv(t, nil)
	iss := newIssuer(t, "stages")
	good := 2 * stagetime.SampleEvery
	for i := range good {
		if w := e.post(iss.sign(t, fmt.Sprint("statement ", i))); w.Code != http.StatusCreated {
			t.Fatalf("POST: %d %q", w.Code, w.Body.Bytes())
		}
	}
	tampered := bytes.Clone(iss.sign(t, "tampered"))
	tampered[len(tampered)-1] ^= 1
	if w := e.post(tampered); w.Code != http.StatusBadRequest {
		t.Fatalf("tampered POST: %d", w.Code)
	}
	runs, seconds := stageRuns(t, e.svc)
	n := float64(good)
	want := map[string]float64{"decode": n + 1, "chain": n + 1, "signature": n + 1, "policy": 0, "receipt": n}
	for stage, n := range want {
		if runs[stage] != n {
			t.Errorf("stage %s ran %v times, want %v (all: %v)", stage, runs[stage], n, runs)
		}
	}
	if seconds["signature"] <= 0 || seconds["decode"] <= 0 {
		t.Errorf("seconds %v: the signature and decode stages took no time", seconds)
	}

	p, err := policy.NewRegistrationPolicy(`export function apply(phdr, uhdr, payload, details) { return true; }`, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	e = newEnv(t, func(s *registry.Service) {
		s.CurrentRegistrationPolicy = func() (*registry.RegistrationPolicy, error) {
			return &registry.RegistrationPolicy{Policy: p}, nil
		}
	})
	if w := e.post(iss.sign(t, "with a policy")); w.Code != http.StatusCreated {
		t.Fatalf("POST with a policy: %d %q", w.Code, w.Body.Bytes())
	}
	if runs, _ := stageRuns(t, e.svc); runs["policy"] != 1 || runs["decode"] != 1 {
		t.Errorf("with a policy: runs %v, want policy and decode once", runs)
	}
}
