// ServiceResult: every API answer of this sample (the swagger endpoints
// aside) is {content, error, success, failure, statusCode, status}, in that
// field order, and the HTTP status is statusCode.

export function succeeded(content) {
  return { content: content, error: null, success: true, failure: false, statusCode: 200, status: "Success" };
}

export function failed(errorType, errorMessage, statusCode) {
  return {
    content: null,
    error: { errorMessage: errorMessage, errorType: errorType },
    success: false,
    failure: true,
    statusCode: statusCode === undefined ? 400 : statusCode,
    status: "Error",
  };
}

// respond turns a ServiceResult into a CCF response.
export function respond(result) {
  return { statusCode: result.statusCode, body: result };
}

export function unauthorized() {
  return respond(failed("Unauthorized", "Unauthorized", 401));
}
