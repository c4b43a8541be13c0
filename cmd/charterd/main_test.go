package main

import "testing"

func TestNodeProcs(t *testing.T) {
	if got := nodeProcs("", 2); got != 3 {
		t.Errorf("nodeProcs unset on 2 CPUs = %d, want 3", got)
	}
	if got := nodeProcs("1", 2); got != 0 {
		t.Errorf("nodeProcs with GOMAXPROCS=1 = %d, want 0 (the operator's choice stands)", got)
	}
}
