"""The two pieces of HTML the dashboard server adds to Voila's: the "full" page, and the
script that frees a page's kernel when the page goes away."""

from __future__ import annotations

import html


def full_page(max_kernels: int) -> str:
    """The page shown when every kernel of the server has an open page."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>RadiPOP dashboard: full</title>
<meta http-equiv="refresh" content="30"></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>The dashboard is full</h1>
<p>{html.escape(str(max_kernels))} dashboard pages are open on this server, its limit.
Close a dashboard tab you no longer use (its work is autosaved) and this page retries by
itself in 30 seconds.</p>
<p>An administrator can raise the limit with <code>--max-kernels</code>
(<code>RADIPOP_MAX_KERNELS</code>).</p>
</body></html>
"""


# Voilà's page sends its shutdown beacon on ``beforeunload`` only, which browsers skip in
# several cases (a tab closed by the system, a mobile browser, Chromium's automation);
# ``pagehide`` fires there too. Appended after the page (the parser puts it in the body).
FREE_ON_PAGEHIDE = r"""
<script>
/* radipop-widgets: free this page's kernel when the page goes away. */
(function () {
  var sent = false;
  window.addEventListener('pagehide', function (event) {
    if (sent || event.persisted) return;
    sent = true;
    try {
      var config = JSON.parse(document.getElementById('jupyter-config-data').textContent);
      var xsrf = document.cookie.match('\\b_xsrf=([^;]*)\\b');
      var form = new FormData();
      form.append('_xsrf', xsrf ? xsrf[1] : '');
      navigator.sendBeacon(config.baseUrl + 'voila/api/shutdown/' + config.kernelId, form);
    } catch (error) { /* no kernel to free */ }
  });
})();
</script>
"""
