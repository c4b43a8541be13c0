package attest

import (
	"bytes"
	"context"
	"testing"
)

func TestVirtual(t *testing.T) {
	ctx := context.Background()
	key := nodeKey(t)
	prov := NewVirtualProvider(goodMeasurement, goodHostData)
	if prov.Platform() != PlatformVirtual {
		t.Fatal(prov.Platform())
	}
	e, err := prov.Evidence(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	allow := Policy{Measurements: [][]byte{goodMeasurement}, HostData: [][]byte{goodHostData}, AllowVirtual: true}

	t.Run("allowed", func(t *testing.T) {
		v, err := Verify(ctx, e, key, allow)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		rd, _ := ReportData(key)
		if v.Platform != PlatformVirtual || v.ReportData != rd || !bytes.Equal(v.Measurement, goodMeasurement) ||
			v.ChipID != nil || v.TCB != 0 {
			t.Fatalf("Verified = %+v", v)
		}
	})
	t.Run("not allowed", func(t *testing.T) {
		p := allow
		p.AllowVirtual = false
		_, err := Verify(ctx, e, key, p)
		wantErr(t, err, ErrVirtualNotAllowed)
	})
	t.Run("report_data still bound", func(t *testing.T) {
		_, err := Verify(ctx, e, nodeKey(t), allow)
		wantErr(t, err, ErrReportData)
	})
	t.Run("measurement not approved", func(t *testing.T) {
		p := allow
		p.Measurements = [][]byte{otherMeasure}
		_, err := Verify(ctx, e, key, p)
		wantErr(t, err, ErrMeasurement)
	})
	t.Run("host data not approved", func(t *testing.T) {
		other, err := NewVirtualProvider(goodMeasurement, nil).Evidence(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(ctx, other, key, allow)
		wantErr(t, err, ErrHostData)
	})
	t.Run("claims a chip id", func(t *testing.T) {
		bad := e.clone()
		bad.Report[0x1A0] = 1 // CHIP_ID
		_, err := Verify(ctx, bad, key, allow)
		wantErr(t, err, ErrMalformed)
	})
	t.Run("claims a signature", func(t *testing.T) {
		bad := e.clone()
		bad.Report[0x34] = 1 // SIGNATURE_ALGO
		_, err := Verify(ctx, bad, key, allow)
		wantErr(t, err, ErrMalformed)
	})
	t.Run("debug policy", func(t *testing.T) {
		rd, _ := ReportData(key)
		raw, err := virtualReport(virtualPolicy|1<<19, 0, rd[:], goodMeasurement, goodHostData)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(ctx, &Evidence{Platform: PlatformVirtual, Report: raw}, key, allow)
		wantErr(t, err, ErrDebug)
	})
	t.Run("VMPL 2", func(t *testing.T) {
		rd, _ := ReportData(key)
		raw, err := virtualReport(virtualPolicy, 2, rd[:], goodMeasurement, goodHostData)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Verify(ctx, &Evidence{Platform: PlatformVirtual, Report: raw}, key, allow)
		wantErr(t, err, ErrVMPL)
	})
	t.Run("bad provider input", func(t *testing.T) {
		if _, err := NewVirtualProvider([]byte{1}, nil).Evidence(ctx, key); err == nil {
			t.Fatal("short measurement accepted")
		}
		if _, err := NewVirtualProvider(goodMeasurement, []byte{1}).Evidence(ctx, key); err == nil {
			t.Fatal("short host data accepted")
		}
	})
}
