// What the consensus map (map.js) and the published results (results.js) share: fetching a GeoJSON overlay for the
// view. One request per kind ("tiles", "buildings") at a time, a newer one aborting the older; a count of the requests
// under way on the page's root element (data-loading, and the class "busy" while it is above zero: the browser tests
// wait for it); the page's status line, which says why an overlay failed for as long as that overlay has not loaded
// again, whatever the other overlay does meanwhile (show(): the page's own text otherwise).
"use strict";
window.overlayRequests = ({root, status}) => {
  const requests = {};
  const failed = {};  // kind -> why its last request failed, until one of that kind loads or it is switched off
  let pending = 0;
  let text = "";

  function setLoading(delta) {
    pending += delta;
    root.dataset.loading = String(pending);
    root.classList.toggle("busy", pending > 0);
  }

  // The status line: the page's text, or why an overlay could not load while one could not.
  function show(pageText) {
    text = pageText;
    const reasons = [...new Set(Object.values(failed))];
    status.classList.toggle("alert", reasons.length > 0);
    status.textContent = reasons.length ? interpolate(gettext("The map could not load: %s"), [reasons.join(" ")]) : text;
  }

  function cancel(kind) {
    if (requests[kind]) requests[kind].abort();
  }

  // Stops the kind's request under way and forgets its failure (the page no longer shows that overlay).
  function abort(kind) {
    cancel(kind);
    if (kind in failed) {
      delete failed[kind];
      show(text);
    }
  }

  // Fetches url and hands its GeoJSON to onData, unless a newer request of the same kind came meanwhile.
  async function load(kind, url, onData) {
    cancel(kind);
    const controller = new AbortController();
    requests[kind] = controller;
    setLoading(+1);
    try {
      const response = await fetch(url, {credentials: "same-origin", signal: controller.signal,
                                         headers: {"Accept": "application/geo+json, application/json"}});
      const data = await response.json();
      if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
      if (controller.signal.aborted) return;
      delete failed[kind];
      onData(data);  // the page calls show() with what it now draws
    } catch (error) {
      if (error.name !== "AbortError" && !controller.signal.aborted) {
        failed[kind] = error.message;
        show(text);
      }
    } finally {
      if (requests[kind] === controller) requests[kind] = null;
      setLoading(-1);
    }
  }

  return {load, abort, show};
};
