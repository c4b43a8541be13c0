// pin-did-x509-ca.js: accept only did:x509 issuers anchored at a pinned CA.
//
// phdr.cwt.iss must be "did:x509:0:ALG:FINGERPRINT::POLICY..." and
// FINGERPRINT (base64url without padding, of the CA certificate the DID
// names) must be in PINNED_CA_FINGERPRINTS. The service has already checked
// that the DID matches phdr.x5chain before the policy runs, so pinning the
// fingerprint pins the CA. Configure: the list below.
const PINNED_CA_FINGERPRINTS = [
  "HnwZ4lezuxq_GVcl_Sk7YWW170qAD0DZBLXilXet0jg",
];

const FINGERPRINT_ALGS = ["sha256", "sha384", "sha512"];

export function apply(phdr, uhdr, payload, details) {
  const iss = phdr.cwt && phdr.cwt.iss;
  if (typeof iss !== "string" || !iss.startsWith("did:x509:")) {
    return `issuer ${JSON.stringify(iss)} is not a did:x509`;
  }
  // did:x509:0:ALG:FINGERPRINT, then one or more "::POLICY" parts.
  const head = iss.split("::")[0].split(":");
  if (head.length !== 5 || head[2] !== "0" || !FINGERPRINT_ALGS.includes(head[3])) {
    return `issuer ${iss} is not a did:x509 version 0 with a sha256/384/512 CA fingerprint`;
  }
  if (!PINNED_CA_FINGERPRINTS.includes(head[4])) {
    return `CA fingerprint ${head[4]} of issuer ${iss} is not pinned`;
  }
  return true;
}
