// content-types.js: accept only SPDX and CycloneDX JSON documents, signed
// directly or as a hash envelope.
//
// Direct: phdr.cty is one of ALLOWED. Hash envelope (RFC 9995): the payload
// is a digest, phdr.payload_hash_alg is set, and phdr.preimage_content_type
// (label 259) must be one of ALLOWED. The CCF SCITT ledger's older hash
// envelopes, "TYPE+cose-hash-v" in phdr.cty, count as TYPE. Media type
// parameters (";charset=utf-8") and case are ignored. Configure: ALLOWED.
const ALLOWED = ["application/spdx+json", "application/vnd.cyclonedx+json"];

const LEGACY_HASH_SUFFIX = "+cose-hash-v";

function essence(ct) {
  return ct.split(";")[0].trim().toLowerCase();
}

export function apply(phdr, uhdr, payload, details) {
  if (phdr.payload_hash_alg !== undefined) {
    const pct = phdr.preimage_content_type;
    if (pct === undefined) {
      return "hash envelope without a preimage content type (label 259)";
    }
    if (!ALLOWED.includes(essence(pct))) {
      return `preimage content type ${pct} is not one of ${ALLOWED.join(", ")}`;
    }
    return true;
  }
  if (phdr.cty === undefined) {
    return "no content type (label 3)";
  }
  let t = essence(phdr.cty);
  if (t.endsWith(LEGACY_HASH_SUFFIX)) {
    t = t.slice(0, -LEGACY_HASH_SUFFIX.length);
  }
  if (!ALLOWED.includes(t)) {
    return `content type ${phdr.cty} is not one of ${ALLOWED.join(", ")}`;
  }
  return true;
}
