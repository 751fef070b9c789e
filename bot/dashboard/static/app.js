// Live pages: the server says "changed" (server-sent events); the page fetches itself
// again and swaps its #live part. Turned away (too many streams), it polls slowly.
"use strict";
(function () {
  const live = document.getElementById("live");
  const dot = document.getElementById("live-dot");
  if (!live || !dot) return; // not signed in: nothing is live
  const POLL_MS = 15000;
  let queued = null;

  function typing() {
    const el = document.activeElement;
    return el && live.contains(el) && el.matches("input, textarea, select");
  }

  async function refresh() {
    queued = null;
    if (typing()) { queued = setTimeout(refresh, 1000); return; }
    const response = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
    if (response.status === 401) { location.reload(); return; }
    if (!response.ok) return;
    const doc = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = doc.getElementById("live");
    if (fresh) live.replaceChildren(...Array.from(fresh.childNodes));
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  }

  function soon() { if (!queued) queued = setTimeout(refresh, 100); }

  function mark(state, title) { dot.className = "live-dot " + state; dot.title = title; }

  if (!window.EventSource) { setInterval(refresh, POLL_MS); return; }
  const source = new EventSource("/events");
  source.addEventListener("open", () => mark("on", "live updates: on"));
  source.addEventListener("changed", soon);
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) {
      mark("polling", "live updates: polling every 15 s");
      setInterval(refresh, POLL_MS);
    } else {
      mark("", "live updates: reconnecting");
    }
  });
})();
