// GET /report and GET /report/{id}: the caller's reconciliation report,
// over the keys the caller itself submitted (see ../lib/records.js for the
// fields' semantics).

import { callerId } from "../lib/auth.js";
import { report, reportById } from "../lib/records.js";
import { respond, unauthorized } from "../lib/result.js";

export function getAllHandler(request) {
  const id = callerId(request);
  if (id === undefined) {
    return unauthorized();
  }
  return respond(report(id));
}

export function getByIdHandler(request) {
  const id = callerId(request);
  if (id === undefined) {
    return unauthorized();
  }
  return respond(reportById(id, request.params.id));
}
