// Refreshes the page's content every two seconds: fetches the same address
// with the refresh header (the server answers with the content only, already
// escaped) and swaps it in. Nothing refreshes while a form field has the
// focus or the tab is hidden; a refused refresh (logged out) reloads the page.
"use strict";
(function () {
  const INTERVAL_MS = 2000;
  let busy = false;
  function editing() {
    const el = document.activeElement;
    return el !== null && el.matches("input, select, textarea");
  }
  async function refresh() {
    if (busy || document.hidden || editing()) return;
    const main = document.getElementById("content");
    if (!main) return;
    busy = true;
    try {
      const response = await fetch(location.href, {
        headers: { "x-dashboard-refresh": "1" },
        credentials: "same-origin",
        cache: "no-store",
      });
      if (response.status === 401) {
        location.reload();
        return;
      }
      if (response.ok) {
        const html = await response.text();
        if (!editing()) main.innerHTML = html;
        document.body.classList.remove("stale");
      } else {
        document.body.classList.add("stale");
      }
    } catch (_) {
      document.body.classList.add("stale");
    } finally {
      busy = false;
    }
  }
  setInterval(refresh, INTERVAL_MS);
})();
