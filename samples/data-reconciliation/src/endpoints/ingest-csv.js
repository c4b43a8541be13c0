// POST /csv/ingest: the caller submits CSV text whose header is lei,nace
// (either order). Quoted fields, CRLF and LF line ends are accepted; see
// ../lib/csv.js for the exact dialect.

import { callerId } from "../lib/auth.js";
import { parseCsvObjects } from "../lib/csv.js";
import { KEY, VALUE, toDataRecords, submit } from "../lib/records.js";
import { failed, respond, unauthorized } from "../lib/result.js";

export function postHandlerCsv(request) {
  const id = callerId(request);
  if (id === undefined) {
    return unauthorized();
  }
  const parsed = parseCsvObjects(request.body.text(), [KEY, VALUE]);
  if (parsed.error) {
    return respond(failed("InvalidCsv", "Error: invalid CSV: " + parsed.error));
  }
  const records = toDataRecords(parsed.records);
  if (records.failure) {
    return respond(records);
  }
  return respond(submit(id, records.content));
}
