// The API docs page (templates/arena/api_docs.html): Swagger UI over the site's OpenAPI document.
// A file of its own because the Content-Security-Policy allows no inline script.
"use strict";
(function () {
  const root = document.getElementById("api-docs");
  const loading = document.getElementById("api-docs-loading");
  if (!window.SwaggerUIBundle) {
    loading.textContent = "The API viewer could not be loaded; the OpenAPI document is linked above.";
    return;
  }
  window.SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    // "Try it out" only for reads: writes need the page's session, CSRF token and proof of work.
    supportedSubmitMethods: ["get"],
    // Swagger UI would otherwise show a badge fetched from an outside validator.
    validatorUrl: null,
    onComplete: function () { root.setAttribute("aria-busy", "false"); },
  });
  root.setAttribute("aria-busy", "true");
})();
