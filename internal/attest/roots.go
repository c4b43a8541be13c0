package attest

import (
	"fmt"

	"github.com/google/go-sev-guest/verify/trust"
)

// RootsFromKDSChain reads an AMD product's ASK and ARK in the format AMD's
// Key Distribution Service serves them (two PEM certificates, ASK first, as
// https://kdsintf.amd.com/vcek/v1/{product}/cert_chain), as Policy.Roots
// for productLine. Operators use it for product lines go-sev-guest does not
// embed yet; test networks use it with go-sev-guest's test signer.
func RootsFromKDSChain(productLine string, chain []byte) (map[string][]*trust.AMDRootCerts, error) {
	if productLine == "" {
		return nil, fmt.Errorf("%w: no product line for the AMD roots", ErrConfig)
	}
	pc := &trust.ProductCerts{}
	if err := pc.FromKDSCertBytes(chain); err != nil {
		return nil, fmt.Errorf("%w: AMD roots: %v", ErrConfig, err)
	}
	if pc.Ark == nil || (pc.Ask == nil && pc.Asvk == nil) {
		return nil, fmt.Errorf("%w: AMD roots: want the ASK (or ASVK) and the ARK", ErrConfig)
	}
	return map[string][]*trust.AMDRootCerts{productLine: {{ProductLine: productLine, ProductCerts: pc}}}, nil
}
