"""The answer renderer's vendored libraries (bin/vendor) load and work in Chromium on a site page, under its
Content-Security-Policy: each is an ES module imported by its static URL, the stylesheets and KaTeX's fonts
come from this origin, and nothing is refused.

Found on the way, for whoever builds the renderer: HTML with an on* attribute handed to DOMPurify makes
Chromium report a (blocked) script-src-attr violation from DOMPurify's own parse, because the document it
parses into inherits the page's policy. Nothing runs, but the report is there; markdown-it with its default
`html: false` escapes raw HTML, so no attribute of the answer's own reaches DOMPurify and nothing is reported.
"""

from __future__ import annotations

import pytest

from tests.security.test_csp_in_browser import Violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

IMPORT = r"""async () => {
  const [{default: markdownit}, {default: DOMPurify}, {default: hljs}, {default: katex}] = await Promise.all([
    import("/static/vendor/markdown-it/markdown-it.js"),
    import("/static/vendor/dompurify/purify.js"),
    import("/static/vendor/highlight/highlight.js"),
    import("/static/vendor/katex/katex.js"),
  ]);
  for (const href of ["/static/vendor/katex/katex.css", "/static/vendor/highlight/a11y-light.css"]) {
    const link = Object.assign(document.createElement("link"), {rel: "stylesheet", href});
    const loaded = new Promise((resolve, reject) => { link.onload = resolve; link.onerror = reject; });
    document.head.append(link);
    await loaded;
  }
  const highlight = (code, language) =>
    hljs.getLanguage(language) ? hljs.highlight(code, {language}).value : "";
  window.libs = {md: markdownit({highlight}), DOMPurify, katex};
}"""

RENDER = r"""async (text) => {
  const {md, DOMPurify, katex} = window.libs;
  const box = document.createElement("div");
  const math = katex.renderToString("\\int_0^1 x^2\\,dx", {displayMode: true});
  box.innerHTML = DOMPurify.sanitize(md.render(text)) + math;
  document.querySelector("main").append(box);
  const faces = await document.fonts.load("16px KaTeX_Main", "x");
  return {
    heading: box.querySelector("h2")?.textContent,
    keyword: box.querySelector("code .hljs-keyword")?.textContent,
    elements: box.querySelectorAll("img, script, [onerror], [onclick]").length,
    scriptLinks: [...box.querySelectorAll("a")].filter((a) => a.href.startsWith("javascript:")).length,
    escaped: box.textContent.includes('<img src="x" onerror='),
    math: box.querySelectorAll(".katex-display .katex-html").length,
    katexFont: faces.length > 0 && faces.every((face) => face.status === "loaded"),
  };
}"""

HOSTILE_MARKDOWN = """## Title

- **bold** and [a link](javascript:alert(1))

<img src="x" onerror="window.__pwned = 1"><script>window.__pwned = 2</script>

```python
def f():
    return 1
```
"""

SANITIZE = r"""(dirty) => {
  const box = document.createElement("div");
  box.innerHTML = window.libs.DOMPurify.sanitize(dirty);
  return box.innerHTML;
}"""


def test_the_answer_renderers_libraries_load_and_work_under_the_policy(asgi_server, page):
    violations = Violations(page)
    page.goto(asgi_server.url + "/")
    page.evaluate(IMPORT)
    assert page.evaluate(RENDER, HOSTILE_MARKDOWN) == {
        "heading": "Title",
        "keyword": "def",
        "elements": 0,  # the raw HTML is text
        "scriptLinks": 0,  # markdown-it refuses javascript: links
        "escaped": True,
        "math": 1,
        "katexFont": True,
    }
    assert page.evaluate("() => window.__pwned") is None
    assert violations.all() == []


def test_dompurify_strips_handlers_scripts_and_script_links_and_the_policy_blocks_the_rest(asgi_server, page):
    violations = Violations(page)
    page.goto(asgi_server.url + "/")
    page.evaluate(IMPORT)
    clean = page.evaluate(
        SANITIZE,
        '<p onclick="window.__pwned = 1">hi<script>window.__pwned = 2</script>'
        '<img src="x" onerror="window.__pwned = 3"><a href="javascript:alert(1)">x</a></p>',
    )
    assert clean == '<p>hi<img src="x"><a>x</a></p>'
    page.wait_for_timeout(300)  # the img's error, had its handler survived
    assert page.evaluate("() => window.__pwned") is None
    # Whatever is reported comes from DOMPurify's parse (see the module's docstring), and was blocked.
    for line in violations.all():
        assert ("script-src-attr blocked inline" in line and "dompurify/purify.js" in line) or (
            "Executing inline event handler" in line and "The action has been blocked" in line
        ), line
