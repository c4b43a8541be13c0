// Ingested records, their storage and the reconciliation summary.
//
// Storage: the private map `data`, key lei (UTF-8) -> JSON
//   {key: lei, type: "string", values: {<caller id>: nace}}
// One vote per caller and key: a caller that submits a key again replaces
// its own vote.

import { failed, succeeded } from "./result.js";

const data = ccf.kv["data"];

// The schema of an ingested record: key column and value column.
export const KEY = "lei";
export const VALUE = "nace";

// Bounds that keep a request inside the runtime's limits (at most 4096 keys
// written per transaction, keys of at most 4096 bytes). A full submission
// of 4096 records needs some 50-70 ms of CPU, close to the default
// max_execution_time_ms of 100: operators expecting big submissions
// should raise it (set_js_runtime_options).
export const MAX_RECORDS = 4096;
const MAX_FIELD_LENGTH = 256;

// The group status needs at least this many votes.
const MINIMUM_VOTES = 3;

// toDataRecords validates parsed input (an array of {lei, nace}) and
// returns a ServiceResult whose content is [{key, value}]. The whole
// submission is refused (400) if it is not a non-empty array or if any
// record is invalid, so nothing is half-ingested. lei and nace are trimmed
// (a stray space would otherwise split a consensus); nace may be a JSON
// number, stored as its decimal string.
export function toDataRecords(input) {
  if (!Array.isArray(input) || input.length === 0) {
    return failed("InvalidInputFormat", "Error: data records is null or empty");
  }
  if (input.length > MAX_RECORDS) {
    return failed("InvalidInputFormat", "Error: more than " + MAX_RECORDS + " records");
  }
  const records = [];
  for (let i = 0; i < input.length; i++) {
    const r = input[i];
    if (r === null || typeof r !== "object" || Array.isArray(r)) {
      return failed("InvalidInputFormat", "Error: record " + i + " is not an object");
    }
    let key = r[KEY];
    let value = r[VALUE];
    if (typeof value === "number" && isFinite(value)) {
      value = String(value);
    }
    if (typeof key !== "string" || typeof value !== "string") {
      return failed("InvalidInputFormat", "Error: record " + i + " needs string fields " + KEY + " and " + VALUE);
    }
    key = key.trim();
    value = value.trim();
    if (key === "" || value === "") {
      return failed("InvalidInputFormat", "Error: record " + i + " has an empty " + (key === "" ? KEY : VALUE));
    }
    if (key.length > MAX_FIELD_LENGTH || value.length > MAX_FIELD_LENGTH) {
      return failed("InvalidInputFormat", "Error: record " + i + " has a field over " + MAX_FIELD_LENGTH + " characters");
    }
    records.push({ key: key, value: value });
  }
  return succeeded(records);
}

function load(key) {
  const v = data.get(ccf.strToBuf(key));
  return v === undefined ? undefined : ccf.bufToJsonCompatible(v);
}

// submit stores callerId's vote for every record.
export function submit(callerId, records) {
  for (const r of records) {
    const stored = load(r.key) || { key: r.key, type: "string", values: {} };
    // defineProperty, not assignment: a jwt sub may be "__proto__".
    Object.defineProperty(stored.values, callerId, {
      value: r.value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
    data.set(ccf.strToBuf(r.key), ccf.jsonCompatibleToBuf(stored));
  }
  return succeeded("data has ingested successfully");
}

// summarize is callerId's view of one stored record, or undefined if the
// caller has not voted on it. Semantics:
//   count_of_unique_values: number of distinct values among all votes;
//   members_in_agreement:   votes equal to the caller's, the caller's own
//                           included;
//   majority_minority:      "Majority" if the caller's value has strictly
//                           more votes than any other value (a plurality),
//                           "Minority" otherwise, ties included: with 2-2
//                           or 1-1 nobody is in the majority;
//   group_status:           NOT_ENOUGH_DATA below 3 votes, else
//                           LACK_OF_CONSENSUS if values differ, else
//                           IN_CONSENSUS.
function summarize(callerId, record) {
  const values = record.values;
  if (!Object.prototype.hasOwnProperty.call(values, callerId)) {
    return undefined;
  }
  const mine = values[callerId];
  const counts = new Map(); // value -> votes
  let votes = 0;
  for (const voter of Object.keys(values)) {
    const v = values[voter];
    counts.set(v, (counts.get(v) || 0) + 1);
    votes++;
  }
  const agreeing = counts.get(mine);
  let majority = true;
  counts.forEach(function (n, v) {
    if (v !== mine && n >= agreeing) {
      majority = false;
    }
  });
  let group;
  if (votes < MINIMUM_VOTES) {
    group = "NOT_ENOUGH_DATA";
  } else if (counts.size > 1) {
    group = "LACK_OF_CONSENSUS";
  } else {
    group = "IN_CONSENSUS";
  }
  const item = {
    group_status: group,
    majority_minority: majority ? "Majority" : "Minority",
    count_of_unique_values: counts.size,
    members_in_agreement: agreeing,
  };
  item[KEY] = record.key;
  item[VALUE] = mine;
  return item;
}

// report is the caller's report over every key it voted on, in key order.
export function report(callerId) {
  const items = [];
  data.forEach(function (v) {
    const item = summarize(callerId, ccf.bufToJsonCompatible(v));
    if (item !== undefined) {
      items.push(item);
    }
  });
  if (items.length === 0) {
    return failed("NoDataToReport", "Error: No data to Report");
  }
  return succeeded(items);
}

// reportById is the caller's report item for one key. A key nobody
// submitted and a key only others submitted get the same 400, so the
// answer does not tell a caller which keys other parties hold.
export function reportById(callerId, key) {
  const record = key === "" ? undefined : load(key);
  const item = record === undefined ? undefined : summarize(callerId, record);
  if (item === undefined) {
    return failed("InvalidRecordKey", "Error: The key does not exist");
  }
  return succeeded(item);
}
