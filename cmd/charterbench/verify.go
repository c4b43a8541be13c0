package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"time"
)

// verifyRate measures ES256 verifications per second on one goroutine for
// d: ecdsa.VerifyASN1 of one P-256 signature, the check every registration
// pays at least once. It is the yardstick for registrations/s: a ratio near
// the number of cores means the server is bound by signature checks.
func verifyRate(d time.Duration) (float64, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return 0, err
	}
	digest := sha256.Sum256([]byte("charterbench single-core ES256 verify"))
	sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		return 0, err
	}
	n := 0
	start := time.Now()
	var elapsed time.Duration
	for {
		for range 64 {
			if !ecdsa.VerifyASN1(&k.PublicKey, digest[:], sig) {
				return 0, errors.New("ES256 signature did not verify")
			}
		}
		n += 64
		if elapsed = time.Since(start); elapsed >= d {
			break
		}
	}
	return float64(n) / elapsed.Seconds(), nil
}
