// subject-prefix.js: each issuer may only make statements about its own
// subjects.
//
// SUBJECT_PREFIXES maps an issuer (phdr.cwt.iss, compared exactly) to the
// prefix its subjects (phdr.cwt.sub) must start with. Issuers not in the map
// are rejected. Configure: SUBJECT_PREFIXES.
const SUBJECT_PREFIXES = {
  "did:x509:0:sha256:HnwZ4lezuxq_GVcl_Sk7YWW170qAD0DZBLXilXet0jg::eku:1.3.6.1.4.1.311.10.3.13": "test.",
};

// A Map, so that issuers such as "constructor" or "__proto__" find nothing.
const PREFIXES = new Map(Object.entries(SUBJECT_PREFIXES));

export function apply(phdr, uhdr, payload, details) {
  const iss = phdr.cwt && phdr.cwt.iss;
  const sub = phdr.cwt && phdr.cwt.sub;
  if (!PREFIXES.has(iss)) {
    return `issuer ${iss} is not allowed to register statements`;
  }
  const prefix = PREFIXES.get(iss);
  if (typeof sub !== "string" || !sub.startsWith(prefix)) {
    return `subject ${sub} of issuer ${iss} does not start with ${prefix}`;
  }
  return true;
}
