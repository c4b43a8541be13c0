// Charter's default constitution. A proposal passes when a strict majority
// of the active members vote for it, and fails when a strict majority votes
// against it. Each action validates its arguments (validate) and writes its
// effect through the host API (apply); see constitution.go for that API.

const M = {
  memberCerts: "public:ccf.gov.members.certs",
  memberInfo: "public:ccf.gov.members.info",
  memberEncKeys: "public:ccf.gov.members.encryption_public_keys",
  memberAcks: "public:ccf.gov.members.acks",
  constitution: "public:ccf.gov.constitution",
  serviceInfo: "public:ccf.gov.service.info",
  userCerts: "public:ccf.gov.users.certs",
  userInfo: "public:ccf.gov.users.info",
  nodesInfo: "public:ccf.gov.nodes.info",
  snpMeasurements: "public:ccf.gov.nodes.snp.measurements",
  snpHostData: "public:ccf.gov.nodes.snp.host_data",
  virtualMeasurements: "public:ccf.gov.nodes.virtual.measurements",
  nodeJoinLimits: "public:ccf.gov.nodes.join_limits",
  appBundle: "public:ccf.gov.app.bundle",
  jsRuntimeOptions: "public:ccf.gov.js_runtime_options",
  jwtIssuers: "public:ccf.gov.jwt.issuers",
  jwtKeys: "public:ccf.gov.jwt.public_signing_keys_metadata",
  caCertBundles: "public:ccf.gov.tls.ca_cert_bundles",
  recovery: "public:ccf.gov.recovery",
  ledgerRekey: "public:ccf.internal.ledger_rekey",
  scittConfig: "public:scitt.configuration",
  scittPolicy: "public:scitt.policy",
  issuerKeys: "public:scitt.issuer_keys",
};

const ALGORITHMS = ["ES256", "ES384", "ES512", "PS256", "PS384", "PS512", "EdDSA"];

function fail(msg) { throw new Error(msg); }
function isObject(v) { return typeof v === "object" && v !== null && !Array.isArray(v); }
function need(args, field, type) {
  const v = args[field];
  if (type === "array" ? !Array.isArray(v) : typeof v !== type) {
    fail(`argument ${field} must be a${type === "array" || type === "object" ? "n" : ""} ${type}`);
  }
  return v;
}
function optional(args, field, type) {
  if (args[field] === undefined) return undefined;
  return need(args, field, type);
}
function onlyFields(args, fields) {
  for (const k of Object.keys(args)) {
    if (!fields.includes(k)) fail(`unknown argument ${k} (want ${fields.join(", ")})`);
  }
}
function hex(args, field, bytes) {
  const v = need(args, field, "string");
  if (!/^[0-9a-f]+$/.test(v) || (bytes && v.length !== 2 * bytes)) {
    fail(`argument ${field} must be ${bytes ? bytes + " bytes of " : ""}lower-case hex`);
  }
  return v;
}
function oneOf(v, field, values) {
  if (!values.includes(v)) fail(`${field} must be one of ${values.join(", ")}, not ${JSON.stringify(v)}`);
}
// uint checks an integer in [min, max].
function uint(args, field, min, max, optionalField) {
  if (optionalField && args[field] === undefined) return undefined;
  const v = args[field];
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    fail(`argument ${field} must be an integer in [${min}, ${max}]`);
  }
  return v;
}
// certBundle checks that text is one or more PEM certificates.
function certBundle(text, field) {
  const parts = text.split("-----END CERTIFICATE-----");
  const certs = parts.slice(0, -1);
  if (certs.length === 0 || parts[parts.length - 1].trim() !== "") fail(`argument ${field} must be PEM certificates`);
  for (const [i, c] of certs.entries()) {
    try {
      charter.memberIdOf(c + "-----END CERTIFICATE-----\n");
    } catch (e) {
      fail(`argument ${field}: certificate ${i} is not a certificate`);
    }
  }
}

// The JS app bundle, as CCF's default constitution checks it
// (samples/constitutions/default/actions.js, set_js_app).
const MODES = ["readwrite", "readonly", "historical"];
const FORWARDING = ["sometimes", "always", "never"];
const REDIRECTION = ["none", "to_primary", "to_backup"];
const POLICIES = ["user_cert", "member_cert", "any_cert", "jwt", "user_cose_sign1", "no_auth"];
const METHODS = ["get", "put", "post", "patch", "delete", "head", "options"];
function checkBundle(bundle) {
  if (!isObject(bundle)) fail("argument bundle must be an object");
  if (!Array.isArray(bundle.modules)) fail("bundle.modules must be an array");
  const names = new Set();
  for (const [i, m] of bundle.modules.entries()) {
    if (!isObject(m) || typeof m.name !== "string" || typeof m.module !== "string") {
      fail(`bundle.modules[${i}] must be {name: string, module: string}`);
    }
    if (names.has(m.name)) fail(`bundle.modules[${i}]: module ${m.name} appears twice`);
    names.add(m.name);
  }
  if (!isObject(bundle.metadata) || !isObject(bundle.metadata.endpoints)) fail("bundle.metadata.endpoints must be an object");
  for (const [url, methods] of Object.entries(bundle.metadata.endpoints)) {
    if (!isObject(methods)) fail(`endpoint ${url} must map methods to endpoint info`);
    for (const [method, info] of Object.entries(methods)) {
      const at = `endpoint ${method.toUpperCase()} ${url}`;
      if (!METHODS.includes(method)) fail(`${at}: method must be one of ${METHODS.join(", ")} (lower case)`);
      if (!isObject(info)) fail(`${at} must be an object`);
      if (typeof info.js_module !== "string") fail(`${at}: js_module must be a string`);
      if (typeof info.js_function !== "string") fail(`${at}: js_function must be a string`);
      oneOf(info.mode, `${at}: mode`, MODES);
      oneOf(info.forwarding_required, `${at}: forwarding_required`, FORWARDING);
      if (info.redirection_strategy !== undefined) oneOf(info.redirection_strategy, `${at}: redirection_strategy`, REDIRECTION);
      if (info.openapi !== undefined && !isObject(info.openapi)) fail(`${at}: openapi must be an object`);
      if (info.openapi_hidden !== undefined && typeof info.openapi_hidden !== "boolean") fail(`${at}: openapi_hidden must be a boolean`);
      if (!Array.isArray(info.authn_policies)) fail(`${at}: authn_policies must be an array`);
      for (const p of info.authn_policies) {
        if (typeof p === "string") {
          oneOf(p, `${at}: authn policy`, POLICIES);
        } else if (isObject(p) && Object.keys(p).length === 1 && Array.isArray(p.all_of) && p.all_of.length > 0) {
          for (const q of p.all_of) oneOf(q, `${at}: all_of policy`, POLICIES);
        } else {
          fail(`${at}: an authn policy is a name or {"all_of": [names]}`);
        }
      }
      if (!names.has(info.js_module)) fail(`${at}: module ${info.js_module} is not in the bundle`);
    }
  }
}

// A JWK as set_jwt_public_signing_keys takes it: a kid, and either an
// x5c chain (its first certificate holds the key, as CCF requires) or the
// key itself (RSA n/e, EC crv/x/y).
const B64URL = /^[A-Za-z0-9_-]+$/;
function checkJWK(k, i) {
  const at = `jwks.keys[${i}]`;
  if (!isObject(k)) fail(`${at} must be an object`);
  if (typeof k.kid !== "string" || k.kid === "") fail(`${at}: kid must be a non-empty string`);
  if (typeof k.kty !== "string") fail(`${at}: kty must be a string`);
  if (k.issuer !== undefined && typeof k.issuer !== "string") fail(`${at}: issuer must be a string`);
  if (k.x5c !== undefined) {
    if (!Array.isArray(k.x5c) || k.x5c.length === 0 || typeof k.x5c[0] !== "string") fail(`${at}: x5c must be a non-empty array of base64 certificates`);
    try {
      charter.memberIdOf("-----BEGIN CERTIFICATE-----\n" + k.x5c[0] + "\n-----END CERTIFICATE-----\n");
    } catch (e) {
      fail(`${at}: x5c[0] is not a base64 DER certificate`);
    }
    return;
  }
  if (k.kty === "RSA") {
    for (const f of ["n", "e"]) if (typeof k[f] !== "string" || !B64URL.test(k[f])) fail(`${at}: RSA key needs ${f} (base64url)`);
  } else if (k.kty === "EC") {
    oneOf(k.crv, `${at}: crv`, ["P-256", "P-384", "P-521"]);
    for (const f of ["x", "y"]) if (typeof k[f] !== "string" || !B64URL.test(k[f])) fail(`${at}: EC key needs ${f} (base64url)`);
  } else {
    fail(`${at}: kty must be RSA or EC when there is no x5c`);
  }
}
function checkJWKS(jwks) {
  if (!isObject(jwks) || !Array.isArray(jwks.keys) || jwks.keys.length === 0) fail("argument jwks must be {keys: [at least one JWK]}");
  jwks.keys.forEach(checkJWK);
}
function issuerURL(issuer) {
  const m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]+)([^?#]*)(\?[^#]*)?(#.*)?$/i.exec(issuer);
  if (!m) fail("issuer must be a URL if auto_refresh is true");
  if (m[1].toLowerCase() !== "https") fail("issuer must be a URL starting with https:// if auto_refresh is true");
  if (m[4] !== undefined || m[5] !== undefined) fail("issuer must be a URL without query or fragment if auto_refresh is true");
}
// setJWTKeys replaces the keys of issuer with those of jwks (apply).
function setJWTKeys(issuer, jwks) {
  for (const kid of charter.kv.keys(M.jwtKeys)) {
    const kept = get(M.jwtKeys, kid).filter((e) => e.issuer !== issuer);
    if (kept.length === 0) charter.kv.delete(M.jwtKeys, kid); else put(M.jwtKeys, kid, kept);
  }
  for (const k of jwks.keys) {
    const entry = { issuer };
    if (k.x5c !== undefined) {
      entry.cert = k.x5c[0];
    } else {
      entry.jwk = k.kty === "RSA" ? { kty: "RSA", kid: k.kid, n: k.n, e: k.e } : { kty: "EC", kid: k.kid, crv: k.crv, x: k.x, y: k.y };
    }
    if (k.issuer !== undefined) entry.constraint = k.issuer;
    const others = (get(M.jwtKeys, k.kid) || []).filter((e) => e.issuer !== issuer);
    put(M.jwtKeys, k.kid, others.concat([entry]));
  }
}

function get(map, key) {
  const v = charter.kv.get(map, key);
  return v === undefined || v === null ? undefined : JSON.parse(v);
}
function has(map, key) {
  const v = charter.kv.get(map, key);
  return v !== undefined && v !== null;
}
// pemBody is a PEM certificate's base64 alone, so that two encodings of
// one certificate (line breaks, trailing newline) compare equal.
function pemBody(p) { return p.replace(/-----(BEGIN|END) CERTIFICATE-----/g, "").replace(/\s+/g, ""); }
function put(map, key, value) { charter.kv.set(map, key, JSON.stringify(value)); }
function activeMembers() {
  return charter.kv.keys(M.memberInfo).filter((id) => get(M.memberInfo, id).status === "Active");
}
function nodeId(a) {
  const id = need(a, "node_id", "string");
  if (!/^[0-9]+$/.test(id) && !/^[0-9a-fA-F]{64}$/.test(id)) fail("node_id must be a raft id (decimal) or CCF's node id (64 hex digits)");
}
function member(id) {
  if (get(M.memberInfo, id) === undefined) fail(`no member ${id}`);
}

const actions = {
  set_member: {
    validate(a) {
      onlyFields(a, ["cert", "encryption_pub_key", "member_data"]);
      charter.memberIdOf(need(a, "cert", "string"));
      optional(a, "encryption_pub_key", "string");
    },
    apply(a) {
      const id = charter.memberIdOf(a.cert);
      charter.kv.set(M.memberCerts, id, a.cert);
      const old = get(M.memberInfo, id);
      put(M.memberInfo, id, { status: old ? old.status : "Accepted", member_data: a.member_data });
      if (a.encryption_pub_key !== undefined) charter.kv.set(M.memberEncKeys, id, a.encryption_pub_key);
    },
  },
  remove_member: {
    validate(a) { onlyFields(a, ["member_id"]); hex(a, "member_id", 32); },
    apply(a) {
      member(a.member_id);
      const active = activeMembers();
      if (active.length === 1 && active[0] === a.member_id) fail("cannot remove the last active member");
      // As CCF's: an active recovery member may leave only if enough
      // recovery members remain to meet the threshold, and its leaving
      // asks for a rekey, so that its share recovers nothing written after.
      const recovery = active.includes(a.member_id) && has(M.memberEncKeys, a.member_id);
      if (recovery) {
        const threshold = get(M.recovery, "threshold");
        const left = active.filter((id) => id !== a.member_id && has(M.memberEncKeys, id)).length;
        if (threshold !== undefined && left < threshold) {
          fail(`removing ${a.member_id} would leave ${left} active recovery members, fewer than the recovery threshold ${threshold}`);
        }
      }
      for (const m of [M.memberCerts, M.memberInfo, M.memberEncKeys, M.memberAcks]) charter.kv.delete(m, a.member_id);
      if (recovery) put(M.ledgerRekey, "requested", (get(M.ledgerRekey, "requested") || 0) + 1);
    },
  },
  set_member_data: {
    validate(a) { onlyFields(a, ["member_id", "member_data"]); hex(a, "member_id", 32); },
    apply(a) {
      member(a.member_id);
      const info = get(M.memberInfo, a.member_id);
      info.member_data = a.member_data;
      put(M.memberInfo, a.member_id, info);
    },
  },
  // As CCF: users.info holds {user_data} only when user_data is given
  // (null or absent deletes it).
  set_user: {
    validate(a) { onlyFields(a, ["cert", "user_data"]); charter.memberIdOf(need(a, "cert", "string")); },
    apply(a) {
      const id = charter.memberIdOf(a.cert);
      charter.kv.set(M.userCerts, id, a.cert);
      if (a.user_data === undefined || a.user_data === null) charter.kv.delete(M.userInfo, id);
      else put(M.userInfo, id, { user_data: a.user_data });
    },
  },
  remove_user: {
    validate(a) { onlyFields(a, ["user_id"]); hex(a, "user_id", 32); },
    apply(a) { charter.kv.delete(M.userCerts, a.user_id); charter.kv.delete(M.userInfo, a.user_id); },
  },
  set_user_data: {
    validate(a) { onlyFields(a, ["user_id", "user_data"]); hex(a, "user_id", 32); },
    apply(a) {
      // CCF writes the info of any id; Charter refuses an unknown user,
      // whose data no request could ever see.
      if (!has(M.userCerts, a.user_id)) fail(`no user ${a.user_id}`);
      if (a.user_data === undefined || a.user_data === null) charter.kv.delete(M.userInfo, a.user_id);
      else put(M.userInfo, a.user_id, { user_data: a.user_data });
    },
  },
  set_js_app: {
    validate(a) {
      onlyFields(a, ["bundle", "disable_bytecode_cache"]);
      checkBundle(a.bundle);
      optional(a, "disable_bytecode_cache", "boolean");
      // What JSON cannot show (modules that do not parse, a js_function
      // that is not exported) the node's app loader checks, if it has one.
      charter.validateAppBundle(JSON.stringify(a.bundle));
    },
    apply(a) {
      put(M.appBundle, "bundle", a.bundle);
      put(M.appBundle, "disable_bytecode_cache", a.disable_bytecode_cache === true);
    },
  },
  remove_js_app: {
    validate(a) { onlyFields(a, []); },
    apply() {
      charter.kv.delete(M.appBundle, "bundle");
      charter.kv.delete(M.appBundle, "disable_bytecode_cache");
    },
  },
  set_js_runtime_options: {
    validate(a) {
      onlyFields(a, ["max_heap_bytes", "max_stack_bytes", "max_execution_time_ms", "log_exception_details", "return_exception_details", "max_cached_interpreters"]);
      uint(a, "max_heap_bytes", 1, 4 * 1024 * 1024 * 1024);
      uint(a, "max_stack_bytes", 1, 256 * 1024 * 1024);
      uint(a, "max_execution_time_ms", 1, 10 * 60 * 1000);
      optional(a, "log_exception_details", "boolean");
      optional(a, "return_exception_details", "boolean");
      uint(a, "max_cached_interpreters", 0, 1024, true);
    },
    apply(a) {
      put(M.jsRuntimeOptions, "options", {
        max_heap_bytes: a.max_heap_bytes,
        max_stack_bytes: a.max_stack_bytes,
        max_execution_time_ms: a.max_execution_time_ms,
        log_exception_details: a.log_exception_details === true,
        return_exception_details: a.return_exception_details === true,
        max_cached_interpreters: a.max_cached_interpreters === undefined ? 10 : a.max_cached_interpreters,
      });
    },
  },
  set_ca_cert_bundle: {
    validate(a) {
      onlyFields(a, ["name", "cert_bundle"]);
      if (need(a, "name", "string") === "") fail("argument name must not be empty");
      certBundle(need(a, "cert_bundle", "string"), "cert_bundle");
    },
    apply(a) { charter.kv.set(M.caCertBundles, a.name, a.cert_bundle); },
  },
  remove_ca_cert_bundle: {
    validate(a) { onlyFields(a, ["name"]); need(a, "name", "string"); },
    apply(a) { charter.kv.delete(M.caCertBundles, a.name); },
  },
  set_jwt_issuer: {
    validate(a) {
      onlyFields(a, ["issuer", "auto_refresh", "ca_cert_bundle_name", "jwks", "key_filter"]);
      if (need(a, "issuer", "string") === "") fail("argument issuer must not be empty");
      optional(a, "auto_refresh", "boolean");
      optional(a, "ca_cert_bundle_name", "string");
      // CCF <= 5 filters keys by SGX attestation; Charter has no SGX.
      if (a.key_filter !== undefined) oneOf(a.key_filter, "key_filter", ["all"]);
      if (a.jwks !== undefined) checkJWKS(a.jwks);
      if (a.auto_refresh) {
        if (!a.ca_cert_bundle_name) fail("ca_cert_bundle_name is missing but required if auto_refresh is true");
        issuerURL(a.issuer);
      }
    },
    apply(a) {
      if (a.auto_refresh && !has(M.caCertBundles, a.ca_cert_bundle_name)) {
        fail(`no CA cert bundle named ${a.ca_cert_bundle_name}`);
      }
      const meta = {};
      if (a.auto_refresh !== undefined) meta.auto_refresh = a.auto_refresh;
      if (a.ca_cert_bundle_name !== undefined) meta.ca_cert_bundle_name = a.ca_cert_bundle_name;
      if (a.key_filter !== undefined) meta.key_filter = a.key_filter;
      put(M.jwtIssuers, a.issuer, meta);
      if (a.jwks !== undefined) setJWTKeys(a.issuer, a.jwks);
    },
  },
  remove_jwt_issuer: {
    validate(a) { onlyFields(a, ["issuer"]); need(a, "issuer", "string"); },
    apply(a) {
      if (!has(M.jwtIssuers, a.issuer)) fail(`no JWT issuer ${a.issuer}`);
      charter.kv.delete(M.jwtIssuers, a.issuer);
      setJWTKeys(a.issuer, { keys: [] });
    },
  },
  set_jwt_public_signing_keys: {
    validate(a) {
      onlyFields(a, ["issuer", "jwks"]);
      need(a, "issuer", "string");
      checkJWKS(a.jwks);
    },
    apply(a) {
      if (!has(M.jwtIssuers, a.issuer)) fail(`${a.issuer} is not a registered JWT issuer (set_jwt_issuer first)`);
      setJWTKeys(a.issuer, a.jwks);
    },
  },
  set_constitution: {
    validate(a) {
      onlyFields(a, ["constitution"]);
      if (need(a, "constitution", "string").length === 0) fail("the constitution is empty");
    },
    apply(a) { charter.kv.set(M.constitution, "constitution", a.constitution); },
  },
  set_scitt_configuration: {
    validate(a) {
      onlyFields(a, ["allowed_algorithms", "max_statement_bytes", "trusted_ca_fingerprints"]);
      const algs = optional(a, "allowed_algorithms", "array");
      if (algs) for (const x of algs) if (!ALGORITHMS.includes(x)) fail(`unknown algorithm ${x} (want one of ${ALGORITHMS.join(", ")})`);
      const max = optional(a, "max_statement_bytes", "number");
      if (max !== undefined && !(Number.isInteger(max) && max >= 64 && max <= 64 * 1024 * 1024)) fail("max_statement_bytes must be an integer in [64, 64 MiB]");
      const cas = optional(a, "trusted_ca_fingerprints", "array");
      if (cas) for (const f of cas) if (typeof f !== "string" || !/^[0-9a-f]{64}$/.test(f)) fail(`trusted CA fingerprint ${f} is not 64 lower-case hex digits`);
    },
    apply(a) {
      put(M.scittConfig, "configuration", {
        allowed_algorithms: a.allowed_algorithms,
        max_statement_bytes: a.max_statement_bytes || 1048576,
        trusted_ca_fingerprints: a.trusted_ca_fingerprints,
      });
    },
  },
  set_registration_policy: {
    validate(a) { onlyFields(a, ["policy"]); need(a, "policy", "string"); },
    apply(a) { charter.kv.set(M.scittPolicy, "policy", a.policy); },
  },
  set_issuer_key: {
    validate(a) { onlyFields(a, ["issuer", "kid", "key"]); need(a, "issuer", "string"); hex(a, "kid"); need(a, "key", "string"); },
    apply(a) { charter.kv.set(M.issuerKeys, a.issuer + "|" + a.kid, a.key); },
  },
  remove_issuer_key: {
    validate(a) { onlyFields(a, ["issuer", "kid"]); need(a, "issuer", "string"); hex(a, "kid"); },
    apply(a) { charter.kv.delete(M.issuerKeys, a.issuer + "|" + a.kid); },
  },
  add_snp_measurement: {
    validate(a) { onlyFields(a, ["measurement"]); hex(a, "measurement", 48); },
    apply(a) { put(M.snpMeasurements, a.measurement, {}); },
  },
  remove_snp_measurement: {
    validate(a) { onlyFields(a, ["measurement"]); hex(a, "measurement", 48); },
    apply(a) { charter.kv.delete(M.snpMeasurements, a.measurement); },
  },
  add_snp_host_data: {
    validate(a) { onlyFields(a, ["host_data"]); hex(a, "host_data", 32); },
    apply(a) { put(M.snpHostData, a.host_data, {}); },
  },
  remove_snp_host_data: {
    validate(a) { onlyFields(a, ["host_data"]); hex(a, "host_data", 32); },
    apply(a) { charter.kv.delete(M.snpHostData, a.host_data); },
  },
  add_virtual_measurement: {
    validate(a) { onlyFields(a, ["measurement"]); hex(a, "measurement", 48); },
    apply(a) { put(M.virtualMeasurements, a.measurement, {}); },
  },
  remove_virtual_measurement: {
    validate(a) { onlyFields(a, ["measurement"]); hex(a, "measurement", 48); },
    apply(a) { charter.kv.delete(M.virtualMeasurements, a.measurement); },
  },
  // A node is named by Charter's raft id (decimal) or by CCF's id (64 hex
  // digits: SHA-256 of its public key, as /node/network/nodes reports it),
  // which charter.nodeKeyOf resolves to the record it names.
  // The node's record keeps what the node presented when it joined (its key
  // and evidence); governance changes only its status.
  transition_node_to_trusted: {
    validate(a) { onlyFields(a, ["node_id"]); nodeId(a); },
    apply(a) {
      const k = charter.nodeKeyOf(a.node_id);
      const node = get(M.nodesInfo, k);
      // A record is made by the node's join, with its key and evidence;
      // governance never makes one.
      if (node === undefined) fail("no node has id " + a.node_id);
      put(M.nodesInfo, k, Object.assign(node, { status: "Trusted" }));
    },
  },
  // Bounds on joins that the network has not trusted yet: how many may be
  // pending (joined, not yet trusted or promoted) at once.
  set_node_join_limits: {
    validate(a) { onlyFields(a, ["max_pending_nodes"]); uint(a, "max_pending_nodes", 1, 64); },
    apply(a) { put(M.nodeJoinLimits, "limits", { max_pending_nodes: a.max_pending_nodes }); },
  },
  remove_node: {
    validate(a) { onlyFields(a, ["node_id"]); nodeId(a); },
    apply(a) {
      // As CCF's: removing a node that never joined changes nothing.
      const k = charter.nodeKeyOf(a.node_id);
      const node = get(M.nodesInfo, k);
      if (node !== undefined) put(M.nodesInfo, k, Object.assign(node, { status: "Retired" }));
    },
  },
  // A new ledger secret version for later private writes: the request is
  // counted here, and the primary answers it with the version and
  // re-shares (spec/recovery.md).
  trigger_ledger_rekey: {
    validate(a) { onlyFields(a, []); },
    apply(a) { put(M.ledgerRekey, "requested", (get(M.ledgerRekey, "requested") || 0) + 1); },
  },
  set_recovery_threshold: {
    validate(a) {
      onlyFields(a, ["recovery_threshold"]);
      const t = need(a, "recovery_threshold", "number");
      if (!Number.isInteger(t) || t < 1 || t > 255) fail("recovery_threshold must be an integer in [1, 255]");
    },
    apply(a) {
      if (a.recovery_threshold > activeMembers().length) fail("recovery_threshold exceeds the number of active members");
      put(M.recovery, "threshold", a.recovery_threshold);
    },
  },
  // CCF's arguments: next_service_identity must be this service's
  // certificate; previous_service_identity, required when the service was
  // recovered, the certificate of the service it recovered. A recovered
  // service holding private maps then waits for its members' recovery
  // shares (WaitingForRecoveryShares); any other opens.
  transition_service_to_open: {
    validate(a) {
      onlyFields(a, ["previous_service_identity", "next_service_identity"]);
      for (const f of ["previous_service_identity", "next_service_identity"]) {
        const v = optional(a, f, "string");
        if (v !== undefined) certBundle(v, f);
      }
    },
    apply(a) {
      const info = get(M.serviceInfo, "service") || { status: "Opening" };
      const same = (x, y) => typeof y === "string" && pemBody(x) === pemBody(y);
      if (a.next_service_identity !== undefined && !same(a.next_service_identity, info.cert)) {
        fail("next_service_identity is not this service's certificate");
      }
      const next = Object.assign({}, info);
      switch (info.status) {
        case "Recovering":
          if (a.previous_service_identity === undefined || a.next_service_identity === undefined) {
            fail("a recovered service opens with previous_service_identity and next_service_identity");
          }
          if (!same(a.previous_service_identity, info.previous_service_identity)) {
            fail("previous_service_identity is not the identity of the service this one recovered");
          }
          next.status = info.private_state_pending ? "WaitingForRecoveryShares" : "Open";
          break;
        case "WaitingForRecoveryShares":
          fail("the service is waiting for recovery shares; it opens when enough are submitted");
          break;
        default:
          if (a.previous_service_identity !== undefined) fail("previous_service_identity is only for a recovered service");
          next.status = "Open";
      }
      put(M.serviceInfo, "service", next);
    },
  },
};

export function validate(input) {
  let proposal;
  try {
    proposal = JSON.parse(input);
  } catch (e) {
    return { valid: false, description: "the proposal is not JSON" };
  }
  if (!isObject(proposal) || !Array.isArray(proposal.actions) || proposal.actions.length === 0) {
    return { valid: false, description: "the proposal must be {\"actions\": [...]} with at least one action" };
  }
  for (const [i, action] of proposal.actions.entries()) {
    const def = actions[action.name];
    if (def === undefined) return { valid: false, description: `action ${i}: unknown action ${JSON.stringify(action.name)}` };
    const args = action.args === undefined ? {} : action.args;
    if (!isObject(args)) return { valid: false, description: `action ${i} (${action.name}): args must be an object` };
    try {
      def.validate(args);
    } catch (e) {
      return { valid: false, description: `action ${i} (${action.name}): ${e.message}` };
    }
  }
  return { valid: true };
}

export function resolve(proposal, proposerId, votes) {
  const active = activeMembers();
  const half = Math.floor(active.length / 2);
  let yes = 0;
  let no = 0;
  for (const v of votes) {
    if (!active.includes(v.member_id)) continue;
    if (v.vote) yes++; else no++;
  }
  if (yes > half) return "Accepted";
  if (no > half) return "Rejected";
  return "Open";
}

export function apply(proposal, proposalId) {
  for (const action of JSON.parse(proposal).actions) {
    actions[action.name].apply(action.args === undefined ? {} : action.args, proposalId);
  }
}
