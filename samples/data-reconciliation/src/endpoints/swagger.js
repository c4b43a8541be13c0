// GET /swagger, /oauth2-redirect.html and /swagger.json (no_auth): a
// Swagger UI page for this app, the OAuth2 redirect page Swagger UI needs
// for its "Authorize" (JWT) flow, and the OpenAPI document the page shows.
// These three answer plain HTML or JSON, not ServiceResults.

// The UI is served by a CDN at a pinned version; the node serves only this
// page.
const swaggerUiVersion = "5.17.14";
const cdn = "https://unpkg.com/swagger-ui-dist@" + swaggerUiVersion;

function html(body) {
  return { statusCode: 200, headers: { "content-type": "text/html" }, body: body };
}

export function getSwaggerUI() {
  return html(
    '<!DOCTYPE html>\n<html lang="en">\n<head>\n' +
      '<meta charset="utf-8" />\n<meta name="viewport" content="width=device-width, initial-scale=1" />\n' +
      "<title>Data reconciliation API</title>\n" +
      '<link rel="stylesheet" href="' + cdn + '/swagger-ui.css" />\n' +
      "</head>\n<body>\n" +
      '<div id="swagger-ui"></div>\n' +
      '<script src="' + cdn + '/swagger-ui-bundle.js" crossorigin></script>\n' +
      "<script>\n" +
      "window.onload = function () {\n" +
      "  window.ui = SwaggerUIBundle({\n" +
      '    url: "/app/swagger.json",\n' +
      '    dom_id: "#swagger-ui",\n' +
      '    oauth2RedirectUrl: window.location.origin + "/app/oauth2-redirect.html",\n' +
      "  });\n" +
      "};\n" +
      "</script>\n</body>\n</html>\n"
  );
}

// The redirect page hands the identity provider's answer (in the fragment
// or the query) back to the Swagger UI window that opened it, then closes.
export function getSwaggerOauthRedirectHandler() {
  return html(
    '<!DOCTYPE html>\n<html lang="en">\n<head><title>Swagger UI: OAuth2 redirect</title></head>\n<body>\n' +
      "<script>\n" +
      '"use strict";\n' +
      "(function () {\n" +
      "  var oauth2 = window.opener && window.opener.swaggerUIRedirectOauth2;\n" +
      "  if (!oauth2) { document.body.textContent = 'No Swagger UI window to return to.'; return; }\n" +
      "  var raw = /code|token|error/.test(window.location.hash)\n" +
      "    ? window.location.hash.substring(1)\n" +
      "    : window.location.search.substring(1);\n" +
      "  var qp = {};\n" +
      "  new URLSearchParams(raw).forEach(function (v, k) { qp[k] = v; });\n" +
      "  var flow = oauth2.auth.schema.get('flow');\n" +
      "  var valid = qp.state === oauth2.state;\n" +
      "  if ((flow === 'accessCode' || flow === 'authorizationCode' || flow === 'authorization_code') && !oauth2.auth.code) {\n" +
      "    if (!valid) { oauth2.errCb({authId: oauth2.auth.name, source: 'auth', level: 'warning', message: 'Authorization may be unsafe: the state does not match.'}); }\n" +
      "    if (qp.code) { delete oauth2.state; oauth2.auth.code = qp.code; oauth2.callback({auth: oauth2.auth, redirectUrl: oauth2.redirectUrl}); }\n" +
      "    else { oauth2.errCb({authId: oauth2.auth.name, source: 'auth', level: 'error', message: qp.error_description || qp.error || 'No authorization code received.'}); }\n" +
      "  } else {\n" +
      "    oauth2.callback({auth: oauth2.auth, token: qp, isValid: valid, redirectUrl: oauth2.redirectUrl});\n" +
      "  }\n" +
      "  window.close();\n" +
      "})();\n" +
      "</script>\n</body>\n</html>\n"
  );
}

// The OpenAPI document of the app's API (paths as clients call them, under
// /app).
const serviceResult = {
  type: "object",
  properties: {
    content: {},
    error: {
      type: ["object", "null"],
      properties: { errorMessage: { type: "string" }, errorType: { type: "string" } },
    },
    success: { type: "boolean" },
    failure: { type: "boolean" },
    statusCode: { type: "integer" },
    status: { type: "string", enum: ["Success", "Error"] },
  },
};

const reportItem = {
  type: "object",
  properties: {
    group_status: { type: "string", enum: ["NOT_ENOUGH_DATA", "LACK_OF_CONSENSUS", "IN_CONSENSUS"] },
    majority_minority: { type: "string", enum: ["Majority", "Minority"] },
    count_of_unique_values: { type: "integer" },
    members_in_agreement: { type: "integer" },
    lei: { type: "string" },
    nace: { type: "string" },
  },
};

function result(description, content) {
  const schema = { allOf: [{ $ref: "#/components/schemas/ServiceResult" }] };
  if (content !== undefined) {
    schema.allOf.push({ type: "object", properties: { content: content } });
  }
  return { description: description, content: { "application/json": { schema: schema } } };
}

const failures = {
  400: result("Invalid input, or nothing to report"),
  401: result("The caller is not an active member, a user, or a token with a subject"),
};

const authenticated = [{ bearerAuth: [] }, { clientCertificate: [] }];

function document() {
  return {
    openapi: "3.1.0",
    info: {
      title: "Data reconciliation",
      version: "1.0.0",
      description:
        "Parties submit values (nace) for keys (lei); each party sees, for the keys it submitted, how far the others agree.",
    },
    paths: {
      "/app/ingest": {
        post: {
          summary: "Submit records as JSON",
          security: authenticated,
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: {
                  type: "array",
                  minItems: 1,
                  items: {
                    type: "object",
                    required: ["lei", "nace"],
                    properties: { lei: { type: "string" }, nace: { type: "string" } },
                  },
                },
              },
            },
          },
          responses: Object.assign({ 200: result("Ingested", { type: "string" }) }, failures),
        },
      },
      "/app/csv/ingest": {
        post: {
          summary: "Submit records as CSV with the header lei,nace",
          security: authenticated,
          requestBody: { required: true, content: { "text/csv": { schema: { type: "string" } } } },
          responses: Object.assign({ 200: result("Ingested", { type: "string" }) }, failures),
        },
      },
      "/app/report": {
        get: {
          summary: "The caller's report over every key it submitted",
          security: authenticated,
          responses: Object.assign(
            { 200: result("Report", { type: "array", items: { $ref: "#/components/schemas/ReportItem" } }) },
            failures
          ),
        },
      },
      "/app/report/{id}": {
        get: {
          summary: "The caller's report for one key it submitted",
          security: authenticated,
          parameters: [{ in: "path", name: "id", required: true, schema: { type: "string" } }],
          responses: Object.assign({ 200: result("Report item", { $ref: "#/components/schemas/ReportItem" }) }, failures),
        },
      },
    },
    components: {
      schemas: { ServiceResult: serviceResult, ReportItem: reportItem },
      securitySchemes: {
        bearerAuth: { type: "http", scheme: "bearer", bearerFormat: "JWT" },
        clientCertificate: {
          type: "mutualTLS",
          description: "A TLS client certificate of a CCF member (who must be Active) or user",
        },
      },
    },
  };
}

export function getOpenApiDocument() {
  return { statusCode: 200, body: document() };
}
