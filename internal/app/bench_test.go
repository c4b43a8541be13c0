package app_test

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
	"testing"

	"github.com/charterlog/charter/internal/app"
)

// BenchmarkBankingTransfer measures one full Call of the banking sample's
// transfer handler (fresh interpreter, module evaluation, request and
// response conversion, KV overlay, SHA-256 claim digest) against an
// in-memory state; writes are not applied, so every iteration moves 1 from
// a balance of 1,000,000.
func BenchmarkBankingTransfer(b *testing.B) {
	e := loadBanking(b)
	u0, u1 := id("user0"), id("user1")
	e.s.put("user_accounts:"+u0, []byte("current_account"), []byte{0x40, 0x42, 0x0f, 0x00})
	e.s.put("user_accounts:"+u1, []byte("savings_account"), []byte{0, 0, 0, 0})
	bundle, err := app.BuildBundle("../../samples/banking")
	if err != nil {
		b.Fatal(err)
	}
	a, err := app.Load(bundle, app.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	ep, params, _ := a.Match("POST", "/transfer/current_account")
	body := []byte(fmt.Sprintf(`{"value":1,"user_id_to":%q,"account_name_to":"savings_account"}`, u1))
	caller := certCaller("user_cert", "user0")
	run := func() {
		req := &app.Request{Method: "POST", Path: "/transfer/current_account", URL: "/app/transfer/current_account",
			Route: ep.Template, Params: params, Body: body, Caller: caller,
			Headers: map[string]string{"content-type": "application/json"}}
		res, err := a.Call(context.Background(), ep, req, app.NewTx(e.s))
		if err != nil || res.StatusCode != 204 || res.WriteSet == nil {
			b.Fatalf("transfer: %+v %v", res, err)
		}
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		cpu := startCPU()
		for b.Loop() {
			run()
		}
		cpu.report(b)
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		cpu := startCPU()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				run()
			}
		})
		cpu.report(b)
	})
}

// cpuMeter measures the process's CPU time (user+system, every thread: GC,
// the watchdog and any background work included), which is what a loaded
// node pays per request, unlike ns/op on an idle core.
type cpuMeter int64

func processCPU() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func startCPU() cpuMeter { return cpuMeter(processCPU()) }

// report adds cpu-µs/op: process CPU time since startCPU per iteration.
func (m cpuMeter) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-int64(m))/1e3/float64(b.N), "cpu-µs/op")
	}
}
