package apphost

import (
	"testing"

	"github.com/charterlog/charter/log"
)

func TestInflightWrites(t *testing.T) {
	var f inflightWrites
	read := func(m, k string) log.Read { return log.Read{Map: m, Key: []byte(k)} }
	scan := func(m string) log.Read { return log.Read{Map: m, Scan: true} }
	if f.busy([]log.Read{read("accounts", "alice"), scan("accounts")}) != nil {
		t.Fatal("busy with nothing in flight")
	}
	rel1 := f.hold([]log.Write{{Map: "accounts", Key: []byte("alice")}, {Map: "accounts", Key: []byte("bob")}})
	rel2 := f.hold([]log.Write{{Map: "accounts", Key: []byte("alice")}})
	for _, r := range []log.Read{read("accounts", "alice"), read("accounts", "bob"), scan("accounts")} {
		if f.busy([]log.Read{r}) == nil {
			t.Errorf("%+v is not busy while written in flight", r)
		}
	}
	for _, r := range []log.Read{read("accounts", "carol"), read("other", "alice"), scan("other")} {
		if f.busy([]log.Read{r}) != nil {
			t.Errorf("%+v is busy, though nothing in flight writes it", r)
		}
	}
	wait := f.busy([]log.Read{read("accounts", "alice")})
	rel1()
	select {
	case <-wait:
		t.Fatal("alice freed while a second transaction still writes her")
	default:
	}
	if f.busy([]log.Read{read("accounts", "bob")}) != nil {
		t.Error("bob still busy after the only transaction writing him ended")
	}
	rel2()
	select {
	case <-wait:
	default:
		t.Fatal("alice not freed after both transactions ended")
	}
	if len(f.keys) != 0 {
		t.Errorf("%d keys left behind", len(f.keys))
	}
}
