/**
 * The /api-docs page: Swagger UI from the installed swagger-ui-dist, configured by a script file of ours
 * (the page's CSP allows no inline script). The viewer reads /openapi.json from this origin and sends
 * "try it out" requests to the document's server, the FHIR base.
 */
export const API_DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Medivoy FHIR API documentation</title>
<link rel="stylesheet" href="/api-docs/swagger-ui.css">
<link rel="stylesheet" href="/api-docs/api-docs.css">
<link rel="icon" type="image/png" href="/api-docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="/api-docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<header class="medivoy-bar">Medivoy FHIR R4 API: use <b>Authorize</b> to paste an access token, then <b>Try it out</b> on any operation.
Pick a resource type in the top bar; the whole document: <a href="/openapi.json">/openapi.json</a>.</header>
<div id="swagger-ui"></div>
<script src="/api-docs/swagger-ui-bundle.js"></script>
<script src="/api-docs/swagger-ui-standalone-preset.js"></script>
<script src="/api-docs/api-docs.js"></script>
</body>
</html>
`;

/** The page's script: Swagger UI configured for this server (SMART needs `aud`, the FHIR base, on /authorize). */
export function apiDocsScript(fhirBase: string): string {
  return `'use strict';
// The definitions (one part of the document per resource type, chosen in the top bar) come from config.json;
// a part's operations are listed, each opened on click.
window.ui = SwaggerUIBundle({
  configUrl: '/api-docs/config.json',
  dom_id: '#swagger-ui',
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: 'StandaloneLayout',
  deepLinking: true,
  docExpansion: 'list',
  defaultModelsExpandDepth: -1,
  filter: true,
  displayRequestDuration: true,
  // No badge from the public validator service: nothing is fetched from elsewhere.
  validatorUrl: null,
  oauth2RedirectUrl: location.origin + '/api-docs/oauth2-redirect.html',
});
window.ui.initOAuth({ usePkceWithAuthorizationCodeGrant: true, appName: 'Medivoy API documentation', additionalQueryStringParams: { aud: ${JSON.stringify(fhirBase)} } });
`;
}

export const API_DOCS_STYLE = `.medivoy-bar { font: 14px/1.5 system-ui, sans-serif; padding: 10px 20px; background: #1f3a4d; color: #fff; }
.medivoy-bar a { color: #bfe3f2; }
`;
