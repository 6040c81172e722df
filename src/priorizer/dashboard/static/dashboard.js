// Refreshes the dashboard in place: fetches the panel from this server every few seconds and
// swaps it in. When the server does not answer, the page keeps the last figures and says so.
(function () {
  "use strict";
  const panel = document.getElementById("panel");
  const state = document.getElementById("refresh-state");
  const updated = document.getElementById("updated-at");
  if (!panel) return;
  const seconds = Math.max(0.5, parseFloat(panel.dataset.refreshSeconds) || 15);
  let lastSuccess = new Date();

  async function refresh() {
    try {
      const response = await fetch(panel.dataset.panelUrl, {
        headers: { Accept: "text/html" },
        cache: "no-store",
      });
      if (!response.ok) throw new Error("HTTP " + response.status);
      panel.innerHTML = await response.text();
      lastSuccess = new Date();
      updated.textContent = lastSuccess.toISOString().replace("T", " ").slice(0, 19) + " UTC";
      updated.dateTime = lastSuccess.toISOString();
      state.classList.remove("stale");
      panel.dispatchEvent(new CustomEvent("refreshed"));
    } catch (error) {
      state.classList.add("stale");
      const age = Math.round((new Date() - lastSuccess) / 1000);
      updated.textContent = "failed (" + error.message + "); figures are " + age + " s old";
    } finally {
      window.setTimeout(refresh, seconds * 1000);
    }
  }

  window.setTimeout(refresh, seconds * 1000);
})();
