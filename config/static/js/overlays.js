// What the consensus map (map.js) and the published results (results.js) share: fetching a GeoJSON overlay for the
// view. One request per kind ("tiles", "buildings") at a time, a newer one aborting the older; a count of the requests
// under way on the page's root element (data-loading, and the class "busy" while it is above zero: the browser tests
// wait for it); a failure said in the page's status line.
"use strict";
window.overlayRequests = ({root, status}) => {
  const requests = {};
  let pending = 0;

  function setLoading(delta) {
    pending += delta;
    root.dataset.loading = String(pending);
    root.classList.toggle("busy", pending > 0);
  }

  function abort(kind) {
    if (requests[kind]) requests[kind].abort();
  }

  // Fetches url and hands its GeoJSON to onData, unless a newer request of the same kind came meanwhile.
  async function load(kind, url, onData) {
    abort(kind);
    const controller = new AbortController();
    requests[kind] = controller;
    setLoading(+1);
    try {
      const response = await fetch(url, {credentials: "same-origin", signal: controller.signal,
                                         headers: {"Accept": "application/geo+json, application/json"}});
      const data = await response.json();
      if (!response.ok) throw new Error((data.error && data.error.message) || response.statusText);
      if (controller.signal.aborted) return;
      onData(data);
    } catch (error) {
      if (error.name !== "AbortError") {
        status.textContent = interpolate(gettext("The map could not load: %s"), [error.message]);
        status.classList.add("alert");
      }
    } finally {
      if (requests[kind] === controller) requests[kind] = null;
      setLoading(-1);
    }
  }

  return {load, abort};
};
