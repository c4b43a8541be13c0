package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"
)

// yardstickSlices is how many slices phase 3 measures: on a shared
// machine one slice can land on a neighbour's burst, and the median of
// several does not move with one of them.
const yardstickSlices = 5

// yardstick is phase 3's single-core ES256 verify rate: the median of its
// slices, and their spread.
type yardstick struct {
	median, min, max float64
	slices           int
	slice            time.Duration
}

func (y yardstick) String() string {
	if y.slices <= 1 {
		return fmt.Sprintf("%.0f", y.median)
	}
	return fmt.Sprintf("%.0f (median of %d slices of %s: %.0f–%.0f)", y.median, y.slices, y.slice, y.min, y.max)
}

// verifyRate measures ES256 verifications per second on one goroutine for
// d, in yardstickSlices slices: ecdsa.VerifyASN1 of one P-256 signature,
// the check every registration pays at least once. It is the yardstick for
// registrations/s: a ratio near the number of cores means the server is
// bound by signature checks.
func verifyRate(d time.Duration) (yardstick, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return yardstick{}, err
	}
	digest := sha256.Sum256([]byte("charterbench single-core ES256 verify"))
	sig, err := ecdsa.SignASN1(rand.Reader, k, digest[:])
	if err != nil {
		return yardstick{}, err
	}
	y := yardstick{slices: yardstickSlices, slice: d / yardstickSlices}
	rates := make([]float64, y.slices)
	for i := range rates {
		n := 0
		start := time.Now()
		var elapsed time.Duration
		for {
			for range 64 {
				if !ecdsa.VerifyASN1(&k.PublicKey, digest[:], sig) {
					return yardstick{}, errors.New("ES256 signature did not verify")
				}
			}
			n += 64
			if elapsed = time.Since(start); elapsed >= y.slice {
				break
			}
		}
		rates[i] = float64(n) / elapsed.Seconds()
	}
	slices.Sort(rates)
	y.median, y.min, y.max = rates[len(rates)/2], rates[0], rates[len(rates)-1]
	return y, nil
}
