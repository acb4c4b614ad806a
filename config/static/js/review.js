// The review page: the queue of contested tiles and uncertain buildings, one tile with every volunteer's marks
// over its images (each date), the consensus buildings, and the coordinator's decisions.
//
// Talks to the same JSON API as any client:
//   GET  /api/v1/projects/<slug>/review/queue/?kind&limit&offset   the queue, best first
//   GET  /api/v1/projects/<slug>/review/tiles/<id>/                images, consensus, buildings in tile pixels
//   GET  /api/v1/tiles/<id>/classifications/                       who said what (pseudonym, reliability, marks)
//   GET  /api/v1/projects/<slug>/reviews/  POST same               the audit trail; a decision
//   GET  /api/v1/projects/<slug>/reviews/?building=<id> or ?added=<id>   one building's history
//   POST /api/v1/reviews/<id>/undo/
// A building a coordinator added has no crowd id: it is named by its add review (`added`, the "review-<id>" of the
// exports), and decisions on it send {added: <id>} instead of {building: <id>}.
// Tile pixels (x right, y down, 0..size) are shown in Leaflet's L.CRS.Simple as LatLng(-y, x), as on the tagging page.
(() => {
  "use strict";
  const root = document.getElementById("review-app");
  const config = JSON.parse(document.getElementById("review-config").textContent);
  const $ = (id) => document.getElementById(id);
  const csrf = (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";
  const lang = document.documentElement.lang || "en";
  const decimals = new Intl.NumberFormat(lang, {minimumFractionDigits: 2, maximumFractionDigits: 2});
  const fmt = (v) => (v === null || v === undefined ? "–" : decimals.format(v));
  const PAGE = 25;
  const COLOURS = ["#ffd400", "#35d0ff", "#ff3d7f", "#8cff5a", "#ff9f1c", "#c77dff", "#00e5b0", "#ffffff"];
  gettext_noop("Destroyed"); gettext_noop("Damaged"); gettext_noop("No damage"); gettext_noop("Can't tell");
  const answerLabel = (key) => {
    const answer = config.answers.find((a) => a.key === key);
    return answer ? gettext(answer.label) : (key || "–");
  };
  const ACTIONS = {confirm: gettext("confirmed"), reject: gettext("rejected"), relabel: gettext("relabelled"),
                   move: gettext("moved"), add: gettext("added")};

  const state = {tile: null, data: null, votes: [], reviews: [], dateIndex: 0, overlays: [], markLayer: null,
                 buildingLayer: null, markers: new Map(), mode: "", offset: 0, focusBuilding: null, historyFor: ""};

  async function api(path, {method = "GET", body} = {}) {
    const headers = {"Accept": "application/json"};
    if (method !== "GET") { headers["X-CSRFToken"] = csrf; headers["Content-Type"] = "application/json"; }
    const response = await fetch(path, {method, headers, credentials: "same-origin",
                                        body: body === undefined ? undefined : JSON.stringify(body)});
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((data.error && data.error.message) || response.statusText);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function say(text, isError = false) {
    const box = $("review-status");
    box.textContent = text;
    box.classList.toggle("error", isError);
  }

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  // --- Queue ------------------------------------------------------------------------------------------------------
  async function loadQueue(append = false) {
    if (!append) state.offset = 0;
    const kind = $("queue-kind").value;
    const params = new URLSearchParams({limit: PAGE, offset: state.offset});
    if (kind) params.set("kind", kind);
    let page;
    try { page = await api(`${config.queue_url}?${params}`); } catch (e) { say(e.message, true); return; }
    const list = $("queue-list");
    if (!append) list.replaceChildren();
    if (!page.results.length && !append) list.append(el("li", gettext("Nothing left to review here."), "empty"));
    for (const item of page.results) {
      const li = el("li");
      const button = el("button", null, `queue-item ${item.kind}`);
      button.type = "button";
      const title = item.kind === "tile"
        ? interpolate(gettext("Tile %(col)s,%(row)s: %(label)s"), {col: item.col, row: item.row, label: answerLabel(item.label)}, true)
        : interpolate(gettext("Building %s"), [item.id]);
      const detail = item.kind === "tile"
        ? interpolate(gettext("confidence %(c)s, %(n)s buildings at stake"), {c: fmt(item.confidence), n: item.buildings}, true)
        : interpolate(gettext("confidence %(c)s, marked by %(n)s"), {c: fmt(item.confidence), n: item.n_support}, true);
      button.append(el("strong", title), el("span", detail));
      button.disabled = !item.tile_id;
      button.addEventListener("click", () => openTile(item.tile_id, item.kind === "building" ? item.id : null));
      li.append(button);
      list.append(li);
    }
    state.offset += page.results.length;
    $("queue-more").hidden = !page.next;
  }

  // --- Map ---------------------------------------------------------------------------------------------------------
  const map = L.map("review-map", {crs: L.CRS.Simple, minZoom: -3, maxZoom: 4, zoomSnap: 0.25,
                                   attributionControl: false, keyboardPanDelta: 60, doubleClickZoom: false});
  const toLatLng = (x, y) => L.latLng(-y, x);
  const toPixel = (latlng) => ({x: latlng.lng, y: -latlng.lat});
  map.setView([0, 0], 0);

  function showDate(index) {
    state.dateIndex = index;
    state.overlays.forEach((overlay, i) => overlay.setOpacity(i === index ? 1 : 0));
    for (const button of $("date-switch").querySelectorAll("button")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.index) === index));
    }
  }

  function drawImages(data) {
    for (const overlay of state.overlays) overlay.remove();
    const size = data.tile.size;
    const bounds = L.latLngBounds([[-size, 0], [0, size]]);
    state.overlays = data.images.map((image) => L.imageOverlay(image.url, bounds, {alt: image.date}).addTo(map));
    const bar = $("date-switch");
    bar.replaceChildren();
    data.images.forEach((image, i) => {
      const button = el("button", image.date);
      button.type = "button";
      button.dataset.index = i;
      button.addEventListener("click", () => showDate(i));
      bar.append(button);
    });
    bar.hidden = data.images.length < 2;
    map.fitBounds(bounds);
    showDate(Math.max(0, data.images.length - 1));
  }

  function drawMarks() {
    if (state.markLayer) state.markLayer.remove();
    state.markLayer = L.layerGroup().addTo(map);
    state.votes.forEach((vote, i) => {
      const colour = COLOURS[i % COLOURS.length];
      for (const mark of vote.marks) {
        L.circleMarker(toLatLng(mark.x, mark.y), {radius: 5, color: "#000", weight: 1, fillColor: colour,
                                                   fillOpacity: 0.9, interactive: true})
          .bindTooltip(interpolate(gettext("%(who)s (reliability %(r)s)"),
                                   {who: vote.volunteer || gettext("deleted account"), r: fmt(vote.volunteer_reliability)}, true))
          .addTo(state.markLayer);
      }
    });
  }

  // Crowd buildings are "b<id>"; added ones "a<id of the add review>".
  function buildingKey(b) { return b.id !== null ? `b${b.id}` : `a${b.added}`; }
  function buildingTarget(b) { return b.id !== null ? {building: b.id} : {added: b.added}; }
  function buildingName(b) {
    return b.id !== null ? interpolate(gettext("Building %s"), [b.id]) : interpolate(gettext("Added building %s"), [b.added]);
  }

  function buildingIcon(b, selected) {
    const classes = ["bmark", b.rejected ? "rejected" : "", b.review_action ? "reviewed" : "", selected ? "selected" : ""];
    return L.divIcon({className: classes.join(" "), iconSize: [26, 26], iconAnchor: [13, 13],
                      html: `<span>${b.confidence >= 0.995 ? "✓" : Math.round(b.confidence * 100)}</span>`});
  }

  function drawBuildings() {
    if (state.buildingLayer) state.buildingLayer.remove();
    state.buildingLayer = L.layerGroup().addTo(map);
    state.markers.clear();
    const selected = $("building-select").value;
    for (const b of state.data.buildings) {
      const key = buildingKey(b);
      const marker = L.marker(toLatLng(b.x, b.y), {icon: buildingIcon(b, key === selected), keyboard: false,
                                                   draggable: state.mode === "move" && key === selected,
                                                   title: buildingTitle(b)});
      marker.on("click", () => { $("building-select").value = key; selectBuilding(); });
      marker.on("dragend", () => moveTo(toPixel(marker.getLatLng())));
      marker.addTo(state.buildingLayer);
      state.markers.set(key, marker);
    }
  }

  function buildingTitle(b) {
    let text = `${buildingName(b)}: ${interpolate(gettext("confidence %s"), [fmt(b.confidence)])}`;
    // An added building says what its latest live review did (moved, rejected...), or "added".
    const action = b.id !== null ? b.review_action : (b.rejected ? "reject" : b.latest_action || "add");
    if (action) text += `, ${ACTIONS[action] || action}`;
    return text;
  }

  // --- Panel -------------------------------------------------------------------------------------------------------
  function facts(pairs) {
    const list = $("tile-facts");
    list.replaceChildren();
    for (const [term, value] of pairs) list.append(el("dt", term), el("dd", value));
  }

  function renderPanel() {
    const data = state.data;
    const crowd = data.consensus;
    const effective = data.effective;
    $("tile-h").textContent = interpolate(gettext("Tile %(col)s,%(row)s (id %(id)s)"),
                                          {col: data.tile.col, row: data.tile.row, id: data.tile.id}, true);
    facts([
      [gettext("Crowd's label"), crowd ? `${answerLabel(crowd.label)} (${fmt(crowd.confidence)})` : gettext("no votes counted")],
      [gettext("Agreement"), crowd ? fmt(crowd.agreement) : "–"],
      [gettext("Label now"), effective.reviewed
        ? `${answerLabel(effective.label)} (${fmt(effective.confidence)}, ${ACTIONS[effective.review_action]})`
        : gettext("as the crowd said")],
      [gettext("Buildings"), String(data.buildings.filter((b) => !b.rejected).length)],
    ]);
    const select = $("building-select");
    const previous = state.focusBuilding || select.value;
    select.replaceChildren();
    for (const b of data.buildings) {
      const option = el("option", buildingTitle(b));
      option.value = buildingKey(b);
      select.append(option);
    }
    if ([...select.options].some((o) => o.value === previous)) select.value = previous;
    state.focusBuilding = null;
    $("tile-actions").disabled = false;
    $("building-actions").disabled = false;
    for (const id of ["confirm-building", "reject-building", "move-building"]) $(id).disabled = !data.buildings.length;
    renderVolunteers();
    renderAudit();
    return renderHistory();
  }

  function renderVolunteers() {
    const list = $("volunteer-list");
    list.replaceChildren();
    if (!state.votes.length) list.append(el("li", gettext("Nobody has answered this tile yet."), "empty"));
    state.votes.forEach((vote, i) => {
      const li = el("li");
      const swatch = el("span", null, "swatch");
      swatch.style.background = COLOURS[i % COLOURS.length];
      li.append(swatch, el("strong", vote.volunteer || gettext("deleted account")),
                el("span", " " + interpolate(gettext("reliability %s"), [fmt(vote.volunteer_reliability)])),
                el("span", " · " + answerLabel(vote.answer)),
                el("span", " · " + interpolate(ngettext("%s mark", "%s marks", vote.marks.length), [vote.marks.length])));
      if (vote.too_fast) li.append(el("span", " · " + gettext("too fast, not counted"), "warn"));
      list.append(li);
    });
  }

  function reviewItem(review) {
    const li = el("li", null, review.undone ? "undone" : "");
    li.dataset.review = String(review.id);
    const what = review.building ? interpolate(gettext("building %s"), [review.building])
      : review.added ? interpolate(gettext("added building %s"), [review.added])
      : review.action === "add" ? interpolate(gettext("new building %s"), [review.id]) : gettext("tile");
    let text = `${ACTIONS[review.action] || review.action} ${what}`;
    if (review.action === "relabel") text += ` → ${answerLabel(review.label)}`;
    li.append(el("strong", text), el("span", ` · ${review.reviewer || "–"} · ${new Date(review.created_at).toLocaleString(lang)}`));
    if (review.note) li.append(el("q", review.note));
    if (review.undone) {
      li.append(el("span", " · " + gettext("undone"), "warn"));
    } else {
      const undo = el("button", gettext("Undo"));
      undo.type = "button";
      undo.setAttribute("aria-label", interpolate(gettext("Undo: %s"), [text]));
      undo.addEventListener("click", () => undoReview(review.id));
      li.append(" ", undo);
    }
    return li;
  }

  function renderAudit() {
    const list = $("audit-list");
    list.replaceChildren();
    const buildingIds = new Set(state.data.buildings.map((b) => b.id).filter((id) => id !== null));
    const addedIds = new Set(state.data.buildings.map((b) => b.added).filter(Boolean));
    const mine = state.reviews.filter((r) => r.tile === state.tile || buildingIds.has(r.building)
                                             || addedIds.has(r.added) || (r.action === "add" && addedIds.has(r.id)));
    if (!mine.length) list.append(el("li", gettext("No reviews yet."), "empty"));
    for (const review of mine) list.append(reviewItem(review));
  }

  // The selected building's whole history, newest first (an added building's ends with its add review).
  async function renderHistory() {
    const b = selectedBuilding();
    const list = $("building-history");
    const key = b ? buildingKey(b) : "";
    state.historyFor = key;
    $("history-h").textContent = !b ? gettext("History of the selected building")
      : b.id !== null ? interpolate(gettext("History of building %s"), [b.id])
      : interpolate(gettext("History of added building %s"), [b.added]);
    if (!b) { list.replaceChildren(); root.dataset.history = ""; return; }
    const params = new URLSearchParams({limit: 100, ...(b.id !== null ? {building: b.id} : {added: b.added})});
    let page;
    try { page = await api(`${config.reviews_url}?${params}`); } catch (e) { say(e.message, true); return; }
    if (state.historyFor !== key) return;  // another building was selected meanwhile
    list.replaceChildren();
    if (!page.results.length) list.append(el("li", gettext("No reviews yet."), "empty"));
    for (const review of page.results) list.append(reviewItem(review));
    root.dataset.history = key;
  }

  // --- Loading a tile ----------------------------------------------------------------------------------------------
  async function openTile(tileId, buildingId = null) {
    if (!tileId) return;
    say(gettext("Loading…"));
    root.dataset.ready = "0";
    try {
      const [data, votes, reviews] = await Promise.all([
        api(`${config.tile_url}${tileId}/`), api(`/api/v1/tiles/${tileId}/classifications/`),
        api(`${config.reviews_url}?limit=500`)]);
      const sameTile = state.tile === tileId;
      state.tile = tileId;
      state.data = data;
      state.votes = votes.classifications;
      state.reviews = reviews.results;
      if (buildingId) state.focusBuilding = `b${buildingId}`;
      if (!sameTile) drawImages(data);
      const history = renderPanel();
      drawMarks();
      drawBuildings();
      root.dataset.tile = String(tileId);
      await history;
      root.dataset.ready = "1";
      say("");
    } catch (e) {
      say(e.message, true);
    }
  }

  async function reload(message) {
    await openTile(state.tile);
    say(message);
    loadQueue();
  }

  // --- Decisions ---------------------------------------------------------------------------------------------------
  async function decide(payload, message) {
    const note = $("review-note").value.trim();
    let made;
    try {
      made = await api(config.reviews_url, {method: "POST", body: {...payload, note}});
    } catch (e) { say(e.message, true); return; }
    if (made.action === "add") state.focusBuilding = `a${made.id}`;  // the new building, selected
    $("review-note").value = "";
    setMode("");
    await reload(message);
  }

  function selectedBuilding() {
    const key = $("building-select").value;
    return state.data.buildings.find((b) => buildingKey(b) === key) || null;
  }

  function selectBuilding() {
    drawBuildings();
    const b = selectedBuilding();
    for (const id of ["confirm-building", "reject-building", "move-building"]) $(id).disabled = !b;
    renderHistory();
  }

  // The status line after a decision on a building: crowd buildings by id, added ones by their add review.
  function buildingDone(b, action) {
    const crowd = {confirm: gettext("Building %s confirmed."), reject: gettext("Building %s rejected."),
                   move: gettext("Building %s moved.")};
    const added = {confirm: gettext("Added building %s confirmed."), reject: gettext("Added building %s rejected."),
                   move: gettext("Added building %s moved.")};
    return b.id !== null ? interpolate(crowd[action], [b.id]) : interpolate(added[action], [b.added]);
  }

  function decideBuilding(action, extra = {}) {
    const b = selectedBuilding();
    if (b) decide({...buildingTarget(b), action, ...extra}, buildingDone(b, action));
  }

  function groundOf(pixel) {
    const t = state.data.tile;
    return {ground_x: t.bounds[0] + pixel.x * t.pixel_size, ground_y: t.bounds[3] - pixel.y * t.pixel_size};
  }

  function moveTo(pixel) {
    decideBuilding("move", groundOf(pixel));
  }

  function addAt(pixel) {
    decide({tile: state.tile, action: "add", ...groundOf(pixel)}, gettext("Building added."));
  }

  function setMode(mode) {
    state.mode = state.mode === mode ? "" : mode;
    root.dataset.mode = state.mode;
    $("move-building").setAttribute("aria-pressed", String(state.mode === "move"));
    $("add-building").setAttribute("aria-pressed", String(state.mode === "add"));
    $("place-centre").hidden = !state.mode;
    $("mode-help").textContent = state.mode === "move"
      ? gettext("Drag the selected building to its place, or click its place on the image. Esc cancels.")
      : state.mode === "add" ? gettext("Click the destroyed building on the image. Esc cancels.") : "";
    if (state.data) drawBuildings();
  }

  map.on("click", (event) => {
    if (!state.data || !state.mode) return;
    const pixel = toPixel(event.latlng);
    const size = state.data.tile.size;
    if (pixel.x < 0 || pixel.y < 0 || pixel.x > size || pixel.y > size) return;
    if (state.mode === "move") moveTo(pixel); else addAt(pixel);
  });

  async function undoReview(id) {
    try { await api(`/api/v1/reviews/${id}/undo/`, {method: "POST"}); } catch (e) { say(e.message, true); return; }
    await reload(gettext("Review undone."));
  }

  $("confirm-tile").addEventListener("click", () => decide({tile: state.tile, action: "confirm"}, gettext("Tile label confirmed.")));
  $("reject-tile").addEventListener("click", () => decide({tile: state.tile, action: "reject"}, gettext("Tile label rejected.")));
  $("relabel-tile").addEventListener("click", () => decide({tile: state.tile, action: "relabel", label: $("relabel-answer").value},
                                                           gettext("Tile relabelled.")));
  $("confirm-building").addEventListener("click", () => decideBuilding("confirm"));
  $("reject-building").addEventListener("click", () => decideBuilding("reject"));
  $("move-building").addEventListener("click", () => setMode("move"));
  $("add-building").addEventListener("click", () => setMode("add"));
  $("place-centre").addEventListener("click", () => {
    const pixel = toPixel(map.getCenter());
    if (state.mode === "move") moveTo(pixel); else if (state.mode === "add") addAt(pixel);
  });
  $("building-select").addEventListener("change", selectBuilding);
  $("queue-kind").addEventListener("change", () => loadQueue());
  $("queue-more").addEventListener("click", () => loadQueue(true));
  $("goto-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = Number($("goto-tile").value);
    if (id) openTile(id);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.mode) setMode("");
  });

  loadQueue();
  const wanted = Number(new URLSearchParams(location.search).get("tile"));
  if (wanted) openTile(wanted);
})();
