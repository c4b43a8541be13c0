// POST /ingest: the caller submits a JSON array of {lei, nace}.

import { callerId } from "../lib/auth.js";
import { toDataRecords, submit } from "../lib/records.js";
import { failed, respond, unauthorized } from "../lib/result.js";

export function postHandler(request) {
  const id = callerId(request);
  if (id === undefined) {
    return unauthorized();
  }
  let input;
  try {
    input = request.body.json();
  } catch (e) {
    return respond(failed("InvalidJSON", "Error: the body is not JSON: " + e.message));
  }
  const records = toDataRecords(input);
  if (records.failure) {
    return respond(records);
  }
  return respond(submit(id, records.content));
}
