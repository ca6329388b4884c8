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
  // What Swagger UI leaves out for screen readers and keyboards, added to what it draws (again after every
  // redraw: operations, parameters and examples appear as they are opened).
  function accessible() {
    // Its operations sit in a <main>, inside the page's own.
    root.querySelectorAll("main:not([role])").forEach(function (main) {
      main.setAttribute("role", "region");
      main.setAttribute("aria-label", "Operations");
    });
    // "Try it out" shows a bare <select> for an enum parameter; its name is the row's.
    root.querySelectorAll("tr[data-param-name] select:not([aria-label])").forEach(function (select) {
      const row = select.closest("tr[data-param-name]");
      select.setAttribute("aria-label", row.dataset.paramName + " (" + (row.dataset.paramIn || "parameter") + ")");
    });
    // Examples and responses scroll sideways inside their box: reachable by keyboard.
    root.querySelectorAll("pre:not([tabindex])").forEach(function (pre) { pre.setAttribute("tabindex", "0"); });
  }

  window.SwaggerUIBundle({
    url: root.dataset.spec,
    domNode: root,
    // Deep links would put a link inside each operation's toggle button (nested controls, which screen
    // readers cannot reach).
    deepLinking: false,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    // A light theme whose colours keep 4.5:1 contrast (the default, agate, draws numbers at 3.5:1).
    syntaxHighlight: { activated: true, theme: "idea" },
    // "Try it out" only for reads: writes need the page's session, CSRF token and proof of work.
    supportedSubmitMethods: ["get"],
    // Swagger UI would otherwise show a badge fetched from an outside validator.
    validatorUrl: null,
    onComplete: function () {
      root.setAttribute("aria-busy", "false");
      accessible();
      new MutationObserver(accessible).observe(root, { childList: true, subtree: true });
    },
  });
  root.setAttribute("aria-busy", "true");
})();
