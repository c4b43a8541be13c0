package gov_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/charterlog/charter/internal/gov"
	"github.com/charterlog/charter/internal/govwire"
	"github.com/charterlog/charter/log"
)

// setServiceInfo writes the service info as a recovery (or a genesis)
// would.
func (e *env) setServiceInfo(info govwire.ServiceInfo) {
	e.t.Helper()
	v, _ := json.Marshal(info)
	if _, err := e.l.SubmitWrites(e.ctx, &log.WriteSet{Writes: []log.Write{{Map: govwire.MapServiceInfo, Key: []byte(govwire.KeyService), Value: v}}, Claims: []byte("test")}); err != nil {
		e.t.Fatal(err)
	}
}

// transition_service_to_open checks CCF's previous_service_identity and
// next_service_identity: a recovered service opens only with both right,
// and waits for recovery shares if it holds private maps; a fresh one
// accepts next_service_identity only if it is its own certificate.
func TestTransitionServiceToOpen(t *testing.T) {
	e := newEnv(t, 1)
	e.activate(e.m[0])
	current, previous := newTestMember(t, "current").pem, newTestMember(t, "previous").pem
	open := func(args map[string]string) *gov.Result {
		b, _ := json.Marshal(args)
		return e.pass(action("transition_service_to_open", string(b)))
	}
	failed := func(what string, r *gov.Result, says string) {
		t.Helper()
		if r.Info.State != "Failed" || r.Info.Failure == nil || !strings.Contains(r.Info.Failure.Reason, says) {
			t.Fatalf("%s: %+v %+v, want Failed saying %q", what, r.Info, r.Info.Failure, says)
		}
	}
	for _, c := range []struct{ args, want string }{
		{`{"next_service_identity": "junk"}`, "argument next_service_identity must be PEM certificates"},
		{`{"previous_service_identity": 3}`, "argument previous_service_identity must be a string"},
		{`{"service_identity": ""}`, "unknown argument service_identity"},
	} {
		if err := e.proposeErr(action("transition_service_to_open", c.args)); !errors.Is(err, gov.ErrInvalidProposal) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.args, err, c.want)
		}
	}

	e.setServiceInfo(govwire.ServiceInfo{Status: govwire.ServiceRecovering, Cert: current, PreviousServiceIdentity: previous})
	failed("without arguments", open(map[string]string{}), "opens with previous_service_identity and next_service_identity")
	failed("wrong previous", open(map[string]string{"previous_service_identity": current, "next_service_identity": current}), "previous_service_identity is not the identity")
	failed("wrong next", open(map[string]string{"previous_service_identity": previous, "next_service_identity": previous}), "next_service_identity is not this service's certificate")
	if s := e.s.ServiceStatus(); s != govwire.ServiceRecovering {
		t.Fatalf("after failed openings: %s", s)
	}
	// The same certificate in another PEM layout is the same identity.
	if r := open(map[string]string{"previous_service_identity": strings.TrimSpace(previous), "next_service_identity": current + "\n"}); r.Info.State != "Accepted" {
		t.Fatalf("opening with the right identities: %+v", r.Info)
	}
	if s := e.s.ServiceStatus(); s != govwire.ServiceOpen {
		t.Fatalf("a recovered service without private maps: %s, want Open", s)
	}

	e.setServiceInfo(govwire.ServiceInfo{Status: govwire.ServiceRecovering, Cert: current, PreviousServiceIdentity: previous, PrivateStatePending: true})
	open(map[string]string{"previous_service_identity": previous, "next_service_identity": current})
	if s := e.s.ServiceStatus(); s != govwire.ServiceWaitingForShares {
		t.Fatalf("a recovered service with private maps: %s, want %s", s, govwire.ServiceWaitingForShares)
	}
	// (Each request differs: an identical one in the same second is a replay.)
	failed("while waiting for shares", open(map[string]string{"previous_service_identity": previous, "next_service_identity": current + "\n"}), "waiting for recovery shares")

	e.setServiceInfo(govwire.ServiceInfo{Status: govwire.ServiceOpening, Cert: current})
	failed("fresh, another next", open(map[string]string{"next_service_identity": previous}), "next_service_identity is not this service's certificate")
	failed("fresh, a previous", open(map[string]string{"previous_service_identity": previous, "next_service_identity": current + "\n\n"}), "only for a recovered service")
	if r := open(map[string]string{"next_service_identity": current}); r.Info.State != "Accepted" || e.s.ServiceStatus() != govwire.ServiceOpen {
		t.Fatalf("fresh, its own next: %+v, %s", r.Info, e.s.ServiceStatus())
	}
}
