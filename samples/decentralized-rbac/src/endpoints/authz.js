// GET /{user_id}/action/{actionName}: may user_id perform actionName?
// Any registered user may ask about any user id (the checking service is
// typically not the user being checked). The answer is 200
// {"allowed":true} only if the user has a role, the role is defined, and
// its action equals actionName ignoring case; every other case, unknown
// user or role included, is 400 {"allowed":false}, so the status alone
// says whether the action is allowed.

import { isUserCaller, unauthorized } from "../lib/auth.js";
import { getRoleAction, getUserRole } from "../lib/store.js";

export function authorize(request) {
  if (!isUserCaller(request)) {
    return unauthorized();
  }
  const userId = request.params.user_id;
  const action = request.params.actionName;
  const role = getUserRole(userId);
  const allowedAction = role === undefined ? undefined : getRoleAction(role);
  const allowed = allowedAction !== undefined && allowedAction === action.toLowerCase();
  return { statusCode: allowed ? 200 : 400, body: { allowed: allowed } };
}
