// realistic-five-checks.js: the checks a production deployment typically
// makes, in one policy (the benchmark's policy):
//   1. the algorithm is ES256, ES384 or EdDSA;
//   2. the statement carries its certificate chain (x5chain);
//   3. the issuer is a did:x509;
//   4. the subject is non-empty and at most 256 characters (code points);
//   5. the content type (for a hash envelope, the preimage content type) is
//      in an allow list, ignoring parameters and case.
// Configure: the constants below.
const ALLOWED_ALGS = ["ES256", "ES384", "EdDSA"];
const MAX_SUBJECT_CHARS = 256;
const ALLOWED_CONTENT_TYPES = [
  "application/spdx+json",
  "application/vnd.cyclonedx+json",
  "application/vnd.in-toto+json",
  "application/json",
];

// Counts code points, stopping once past limit. A string has at most as
// many code points as UTF-16 units, so one no longer than limit units is
// never counted: the check costs nothing for ordinary subjects.
function charsUpTo(s, limit) {
  if (s.length <= limit) return s.length;
  let n = 0;
  for (const _ of s) {
    if (++n > limit) break;
  }
  return n;
}

export function apply(phdr, uhdr, payload, details) {
  if (!ALLOWED_ALGS.includes(phdr.alg)) {
    return `algorithm ${phdr.alg} is not one of ${ALLOWED_ALGS.join(", ")}`;
  }
  if (!Array.isArray(phdr.x5chain) || phdr.x5chain.length === 0) {
    return "no x5chain: the statement must carry its certificate chain";
  }
  const cwt = phdr.cwt || {};
  if (typeof cwt.iss !== "string" || !cwt.iss.startsWith("did:x509:")) {
    return `issuer ${cwt.iss} is not a did:x509`;
  }
  if (typeof cwt.sub !== "string" || cwt.sub.length === 0) {
    return "the subject is empty";
  }
  if (charsUpTo(cwt.sub, MAX_SUBJECT_CHARS) > MAX_SUBJECT_CHARS) {
    return `the subject is longer than ${MAX_SUBJECT_CHARS} characters`;
  }
  const ct = phdr.payload_hash_alg !== undefined ? phdr.preimage_content_type : phdr.cty;
  if (typeof ct !== "string") {
    return "no content type";
  }
  if (!ALLOWED_CONTENT_TYPES.includes(ct.split(";")[0].trim().toLowerCase())) {
    return `content type ${ct} is not allowed`;
  }
  return true;
}
