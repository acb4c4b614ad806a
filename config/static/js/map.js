// The coordinators' consensus map: imagery per date (with a swipe between two dates), the tiles coloured by
// what the crowd said, and the destroyed buildings it found, with filters and pop-ups.
//
// Talks to the same JSON API as any client:
//   GET /api/v1/layers/<id>/xyz/{z}/{x}/{y}.webp?v=<version>      imagery, one Leaflet tile layer per date
//   GET /api/v1/projects/<slug>/map/tiles.geojson?bbox&zoom&color&answer&min_confidence&max_confidence&contested
//       &reviewed
//   GET /api/v1/projects/<slug>/map/buildings.geojson?bbox&zoom&min_confidence&date_from&date_to&reviewed
// Tiles and building points come with the coordinators' reviews applied (their pop-ups say who decided what,
// with a link to the review page: the collection's "review_url", with {id} a tile id); so do grouped cells and
// clusters ("reviews_applied": true; each says how many of its tiles or buildings are "reviewed").
// Overlays are reloaded for the view after every move (a stale request is aborted). When a view holds too
// many tiles or buildings the server groups them into cells ("aggregated": true), drawn the same way.
//
// Hooks for the review actions (not built yet): #consensus-map[data-review-url], and window.ConsensusMap:
//   popupExtensions: functions (container, kind, properties, reviewUrl) called on every pop-up built, where
//                    kind is "tile", "cell", "building" or "cluster";
//   paramExtensions: functions (kind, URLSearchParams) called before each overlay request ("tiles"/"buildings");
//   popupFor(kind, properties), reload(): what the extensions may reuse.
(() => {
  "use strict";
  const root = document.getElementById("consensus-map");
  const config = JSON.parse(document.getElementById("map-config").textContent);
  const $ = (id) => document.getElementById(id);
  const lang = document.documentElement.lang || "en";
  const numbers = new Intl.NumberFormat(lang);
  const decimals = new Intl.NumberFormat(lang, {minimumFractionDigits: 2, maximumFractionDigits: 2});
  const percent = new Intl.NumberFormat(lang, {style: "percent", maximumFractionDigits: 0});
  const moment = new Intl.DateTimeFormat(lang, {dateStyle: "medium", timeStyle: "short"});
  // The default answers are translated (msgids shared with the tagging page); a project's own wording is shown as written.
  gettext_noop("Destroyed"); gettext_noop("Damaged"); gettext_noop("No damage"); gettext_noop("Can't tell");

  const ANSWER_COLOURS = {destroyed: "#d7191c", damaged: "#fd8d3c", no_damage: "#1a9641", cant_tell: "#9e9e9e"};
  const PALETTE = ["#7b3294", "#0571b0", "#e6ab02", "#66a61e", "#e7298a", "#a6761d"];
  const UNIT_RAMP = [[0, "#d73027"], [0.5, "#fee090"], [1, "#4575b4"]];  // confidence, agreement: red is doubtful
  const PROGRESS_RAMP = [[0, "#f7fbff"], [0.5, "#6baed6"], [1, "#08306b"]];
  const BUILDING_RAMP = [[0, "#ffffb2"], [0.5, "#fd8d3c"], [1, "#bd0026"]];
  const DEBOUNCE_MS = 120;

  const answers = config.answers;
  const answerByKey = Object.fromEntries(answers.map((a) => [a.key, a]));
  const answerLabel = (key) => (answerByKey[key] ? gettext(answerByKey[key].label) : key);
  const answerColour = (key) => ANSWER_COLOURS[key] || PALETTE[answers.findIndex((a) => a.key === key) % PALETTE.length] || "#555";

  const hooks = {popupExtensions: [], paramExtensions: []};

  // --- Colours ----------------------------------------------------------------------------------------------------------
  function hex(c) { return [1, 3, 5].map((i) => parseInt(c.slice(i, i + 2), 16)); }
  function ramp(stops, value) {
    const v = Math.min(1, Math.max(0, value));
    for (let i = 1; i < stops.length; i++) {
      const [p1, c1] = stops[i];
      const [p0, c0] = stops[i - 1];
      if (v <= p1) {
        const t = (v - p0) / (p1 - p0 || 1);
        const [a, b] = [hex(c0), hex(c1)];
        return "#" + a.map((x, j) => Math.round(x + (b[j] - x) * t).toString(16).padStart(2, "0")).join("");
      }
    }
    return stops[stops.length - 1][1];
  }

  // --- Map and imagery ----------------------------------------------------------------------------------------------------
  const layers = config.layers;
  const maxZoom = Math.max(20, ...layers.map((l) => l.maxzoom + 1));
  const map = L.map("map", {zoomSnap: 1, minZoom: 2, maxZoom, keyboardPanDelta: 120, attributionControl: false});
  // One canvas for both overlays: a second canvas on top would take every click (a Leaflet limitation), so the
  // buildings are kept last in its drawing order instead, where they are drawn, and clicked, on top.
  const renderer = L.canvas({padding: 0.25});
  const imagery = layers.map((l) => L.tileLayer(l.url, {
    bounds: L.latLngBounds([[l.bounds[1], l.bounds[0]], [l.bounds[3], l.bounds[2]]]),
    minZoom: Math.max(0, l.minzoom - 2), minNativeZoom: l.minzoom, maxNativeZoom: l.maxzoom, maxZoom,
    tileSize: 256, keepBuffer: 1, className: "imagery"}));
  const view = {shown: layers.length - 1, compared: null};

  function showImagery() {
    imagery.forEach((layer, i) => {
      const wanted = i === view.shown || i === view.compared;
      if (wanted && !map.hasLayer(layer)) layer.addTo(map);
      if (!wanted && map.hasLayer(layer)) layer.remove();
      if (wanted) layer.setZIndex(i === view.compared ? 2 : 1);
      const el = layer.getContainer();
      if (el && i !== view.compared) el.style.clip = "";
    });
    const comparing = view.compared !== null;
    if ($("swipe-box")) $("swipe-box").hidden = !comparing;
    $("swipe-line").hidden = !comparing;
    $("chip-right").textContent = layers.length ? layers[view.shown].date : "";
    $("chip-left").textContent = comparing ? layers[view.compared].date : "";
    clipSwipe();
  }

  function clipSwipe() {
    if (view.compared === null) return;
    const el = imagery[view.compared].getContainer();
    const size = map.getSize();
    const share = Number($("map-swipe").value) / 100;
    const nw = map.containerPointToLayerPoint([0, 0]);
    const se = map.containerPointToLayerPoint(size);
    const x = nw.x + size.x * share;
    // The compared date shows left of the line; clip is in the layer's own (pane) pixels.
    if (el) el.style.clip = `rect(${nw.y}px, ${x}px, ${se.y}px, ${nw.x}px)`;
    $("swipe-line").style.left = `${share * 100}%`;
  }

  // --- Overlays ------------------------------------------------------------------------------------------------------------
  const tilesLayer = L.geoJSON(null, {
    style: tileStyle,
    onEachFeature: (feature, layer) => layer.bindPopup(() => popupFor(feature.id && String(feature.id).startsWith("c")
      ? "cell" : "tile", feature.properties, layer), {maxWidth: 340, minWidth: 240}),
  }).addTo(map);
  const buildingsLayer = L.geoJSON(null, {
    pointToLayer: (feature, latlng) => buildingMarker(feature, latlng),
    onEachFeature: (feature, layer) => layer.bindPopup(() => popupFor(feature.properties.buildings !== undefined
      ? "cluster" : "building", feature.properties, layer), {maxWidth: 340, minWidth: 240}),
  }).addTo(map);
  const requests = overlayRequests({root, status: $("map-status")});  // overlays.js
  const drawn = {tiles: null, buildings: null};  // the last answers' collection properties

  function colourOf(props) {
    const mode = $("color-by").value;
    if (mode === "answer") return props.label ? answerColour(props.label) : null;
    if (mode === "progress") return ramp(PROGRESS_RAMP, props.progress || 0);
    const value = props[mode];
    return value === null || value === undefined ? null : ramp(UNIT_RAMP, value);
  }

  function tileStyle(feature) {
    const props = feature.properties;
    const colour = colourOf(props);
    // A tile is contested or not; a cell is outlined when over a quarter of its judged tiles are.
    const contested = props.contested === true || (props.judged > 0 && props.contested / props.judged > 0.25);
    if (!colour) return {renderer, color: "#ffffff", weight: 0.6, opacity: 0.7, fill: true, fillOpacity: 0.02};
    let fillOpacity = 0.38;
    if ($("color-by").value === "answer" && props.label_share) fillOpacity = 0.2 + 0.4 * props.label_share;
    return {renderer, color: contested ? "#ffea00" : colour, weight: contested ? 1.6 : 0.6,
            opacity: 0.9, fillColor: colour, fillOpacity};
  }

  function buildingMarker(feature, latlng) {
    const props = feature.properties;
    if (props.buildings !== undefined) {  // a cluster: size by count
      const radius = Math.min(22, 5 + 3 * Math.log2(props.buildings));
      return L.circleMarker(latlng, {renderer, radius, color: "#ffffff", weight: 1.5,
                                     fillColor: ramp(BUILDING_RAMP, props.confidence || 0), fillOpacity: 0.85});
    }
    const c = props.confidence || 0;
    const scale = Math.min(1, Math.max(0.45, (map.getZoom() - 12) / 6));  // smaller dots where they crowd
    return L.circleMarker(latlng, {renderer, radius: Math.max(2.5, (3 + 5 * c) * scale),
                                   color: "#111111", weight: 1, fillColor: ramp(BUILDING_RAMP, c), fillOpacity: 0.9});
  }

  function bbox() {
    const b = map.getBounds().pad(0.05);
    const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    return [clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90), clamp(b.getEast(), -180, 180),
            clamp(b.getNorth(), -90, 90)].map((v) => v.toFixed(6)).join(",");
  }

  function unitValue(id) {
    const el = $(id);
    if (!el || el.value === "") return null;
    const v = Number(el.value);
    return Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : null;
  }

  function overlayParams(kind) {
    const params = new URLSearchParams({bbox: bbox(), zoom: String(Math.round(map.getZoom()))});
    if (kind === "tiles") {
      params.set("color", $("color-by").value);
      if ($("filter-answer").value) params.set("answer", $("filter-answer").value);
      const low = unitValue("filter-min");
      const high = unitValue("filter-max");
      if (low !== null && low > 0) params.set("min_confidence", String(low));
      if (high !== null && high < 1) params.set("max_confidence", String(high));
      if ($("filter-contested").checked) params.set("contested", "1");
    } else {
      const low = unitValue("building-min");
      params.set("min_confidence", String(low === null ? 0.5 : low));
      if ($("date-from") && $("date-from").value) params.set("date_from", $("date-from").value);
      if ($("date-to") && $("date-to").value) params.set("date_to", $("date-to").value);
    }
    if ($("filter-reviewed").value) params.set("reviewed", $("filter-reviewed").value);
    for (const extend of hooks.paramExtensions) extend(kind, params);
    return params;
  }

  function load(kind) {
    const layer = kind === "tiles" ? tilesLayer : buildingsLayer;
    const shown = $(kind === "tiles" ? "show-tiles" : "show-buildings").checked;
    if (!shown) {
      requests.abort(kind);
      layer.clearLayers();
      drawn[kind] = null;
      countDrawn();
      return;
    }
    const url = `${kind === "tiles" ? config.tiles_url : config.buildings_url}?${overlayParams(kind)}`;
    requests.load(kind, url, (data) => {
      // A pop-up open on a feature (often it has just panned the map, which reloads) opens again on the new one.
      let reopen = null;
      layer.eachLayer((old) => { if (old.isPopupOpen()) reopen = {id: old.feature.id, at: old.getPopup().getLatLng()}; });
      layer.clearLayers();
      layer.addData(data);
      if (reopen) layer.eachLayer((fresh) => { if (fresh.feature.id === reopen.id) fresh.openPopup(reopen.at); });
      if (kind === "tiles") buildingsLayer.eachLayer((marker) => marker.bringToFront());
      drawn[kind] = data.properties;
      countDrawn();
    });
  }

  function countDrawn() {
    root.dataset.tilesDrawn = String(tilesLayer.getLayers().length);
    root.dataset.buildingsDrawn = String(buildingsLayer.getLayers().length);
    root.dataset.tilesAggregated = String(Boolean(drawn.tiles && drawn.tiles.aggregated));
    const parts = [];
    const t = drawn.tiles;
    if (t) {
      parts.push(t.aggregated
        ? interpolate(gettext("%(tiles)s tiles, grouped %(k)s × %(k)s in %(cells)s cells"),
                      {tiles: numbers.format(t.tiles), k: numbers.format(t.cell_tiles), cells: numbers.format(t.count)}, true)
        : interpolate(ngettext("%(n)s tile", "%(n)s tiles", t.count), {n: numbers.format(t.count)}, true));
    }
    const b = drawn.buildings;
    if (b) {
      parts.push(b.aggregated
        ? interpolate(gettext("%(n)s buildings in %(cells)s clusters"),
                      {n: numbers.format(b.buildings), cells: numbers.format(b.count)}, true)
        : interpolate(ngettext("%(n)s building", "%(n)s buildings", b.count), {n: numbers.format(b.count)}, true));
    }
    requests.show(parts.length ? interpolate(gettext("In view: %s"), [parts.join(" · ")]) : "");
  }

  let timer = null;
  function reload(kinds = ["tiles", "buildings"]) {
    clearTimeout(timer);
    timer = setTimeout(() => kinds.forEach(load), DEBOUNCE_MS);
  }

  // --- Pop-ups -------------------------------------------------------------------------------------------------------------
  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function facts(container, rows) {
    const dl = el("dl", null, "facts");
    for (const [term, value] of rows) {
      if (value === null || value === undefined || value === "") continue;
      dl.append(el("dt", term), el("dd", value));
    }
    container.append(dl);
  }

  const fmt = (v) => (v === null || v === undefined ? "—" : decimals.format(v));

  function votesLink(container, kind, id) {
    const template = drawn[kind] && drawn[kind].votes_url;
    if (!template) return;
    const a = el("a", gettext("See the votes"));
    a.href = template.replace("{id}", encodeURIComponent(id));
    a.target = "_blank";
    a.rel = "noopener";
    const line = el("p");
    line.append(a);
    container.append(line);
  }

  function reviewAction(review) {
    if (review.action === "relabel") return interpolate(gettext("Relabelled: %s"), [answerLabel(review.label)]);
    const names = {confirm: gettext("Confirmed"), reject: gettext("Rejected"), move: gettext("Moved"),
                   add: gettext("Added by a coordinator")};
    return names[review.action] || review.action;
  }

  // What the coordinators decided (reviews override the crowd), and the review page opened on the tile.
  function reviewSection(container, kind, props) {
    const section = el("section", null, "review");
    section.append(el("h4", gettext("Review")));
    const review = props.review;
    if (review) {
      const at = review.at ? moment.format(new Date(review.at)) : null;
      facts(section, [
        [gettext("Decision"), reviewAction(review)],
        [gettext("Reviewer"), review.reviewer || gettext("unknown")],
        [gettext("When"), at],
        [gettext("Note"), review.note],
        [gettext("The crowd said"), review.crowd_label ? answerLabel(review.crowd_label) : null],
      ]);
    } else {
      section.append(el("p", gettext("Not reviewed yet."), "note"));
    }
    const template = drawn[kind] && drawn[kind].review_url;
    const tile = kind === "tiles" ? props.id : props.tile;
    if (template && tile !== null && tile !== undefined) {
      const a = el("a", gettext("Open review"), "open-review");
      a.href = template.replace("{id}", encodeURIComponent(tile));
      const line = el("p");
      line.append(a);
      section.append(line);
    }
    container.append(section);
  }

  function zoomButton(container, layer) {
    const button = el("button", gettext("Zoom in"), "zoom-in");
    button.type = "button";
    button.addEventListener("click", () => {
      map.closePopup();
      if (layer.getBounds) map.fitBounds(layer.getBounds(), {maxZoom: map.getZoom() + 3});
      else map.setView(layer.getLatLng(), Math.min(map.getMaxZoom(), map.getZoom() + 2));
    });
    container.append(button);
  }

  function popupFor(kind, props, layer) {
    const box = el("div", null, `map-popup ${kind}`);
    box.dir = document.documentElement.dir || "ltr";
    const redundancy = drawn.tiles ? drawn.tiles.redundancy : config.redundancy;
    if (kind === "tile") {
      box.append(el("h3", interpolate(gettext("Tile %(col)s, %(row)s"), {col: props.col, row: props.row}, true)));
      const counts = Object.entries(props.counts || {}).filter(([, n]) => n > 0)
        .map(([key, n]) => `${answerLabel(key)}: ${numbers.format(n)}`).join(", ");
      facts(box, [
        [gettext("Consensus"), props.label ? answerLabel(props.label) : gettext("none yet")],
        [gettext("Confidence"), fmt(props.confidence)],
        [gettext("Agreement"), fmt(props.agreement)],
        [gettext("Votes"), interpolate(gettext("%(votes)s of %(needed)s"),
                                       {votes: numbers.format(props.votes), needed: numbers.format(redundancy)}, true)],
        [gettext("Answers"), counts],
      ]);
      if (props.contested) box.append(el("p", gettext("Contested: the crowd disagrees or is unsure."), "badge"));
      votesLink(box, "tiles", props.id);
      reviewSection(box, "tiles", props);
    } else if (kind === "cell") {
      box.append(el("h3", interpolate(ngettext("%(n)s tile", "%(n)s tiles", props.tiles), {n: numbers.format(props.tiles)}, true)));
      const labels = Object.entries(props.labels || {}).map(([key, n]) => `${answerLabel(key)}: ${numbers.format(n)}`).join(", ");
      facts(box, [
        [gettext("With a consensus"), numbers.format(props.judged)],
        [gettext("Most frequent answer"), props.label ? answerLabel(props.label) : gettext("none yet")],
        [gettext("Answers"), labels],
        [gettext("Mean confidence"), fmt(props.confidence)],
        [gettext("Mean agreement"), fmt(props.agreement)],
        [gettext("Contested tiles"), numbers.format(props.contested)],
        [gettext("Reviewed tiles"), numbers.format(props.reviewed || 0)],
        [gettext("Progress"), percent.format(props.progress || 0)],
      ]);
      zoomButton(box, layer);
    } else if (kind === "building") {
      box.append(el("h3", gettext("Destroyed building")));
      let when = null;
      if (props.first_destroyed) {
        when = props.last_intact
          ? interpolate(gettext("between %(intact)s and %(destroyed)s"), {intact: props.last_intact, destroyed: props.first_destroyed}, true)
          : interpolate(gettext("by %s"), [props.first_destroyed]);
        if (props.window_confidence !== null) when += ` (${fmt(props.window_confidence)})`;
      }
      facts(box, [
        [gettext("Confidence"), fmt(props.confidence)],
        [gettext("Location uncertainty"), interpolate(gettext("± %s m"), [numbers.format(props.uncertainty_m)])],
        [gettext("Marked by"), interpolate(ngettext("%s volunteer", "%s volunteers", props.support), [numbers.format(props.support)])],
        [gettext("Seen, not marked by"), interpolate(ngettext("%s volunteer", "%s volunteers", props.oppose), [numbers.format(props.oppose)])],
        [gettext("Destroyed"), when],
      ]);
      if (props.is_gold) box.append(el("p", gettext("Known building (gold)"), "badge"));
      if (typeof props.id === "number") votesLink(box, "buildings", props.id);  // an added one has no votes
      reviewSection(box, "buildings", props);
    } else {
      box.append(el("h3", interpolate(ngettext("%(n)s building", "%(n)s buildings", props.buildings), {n: numbers.format(props.buildings)}, true)));
      facts(box, [[gettext("Mean confidence"), fmt(props.confidence)], [gettext("Highest confidence"), fmt(props.max_confidence)],
                  [gettext("Reviewed buildings"), numbers.format(props.reviewed || 0)]]);
      zoomButton(box, layer);
    }
    for (const extend of hooks.popupExtensions) extend(box, kind, props, root.dataset.reviewUrl || "");
    return box;
  }

  // --- Legend -----------------------------------------------------------------------------------------------------------------
  function swatch(colour, label, className = "swatch") {
    const item = el("li");
    const mark = el("span", null, className);
    if (colour) mark.style.background = colour;
    item.append(mark, document.createTextNode(" " + label));
    return item;
  }

  function gradient(stops, low, high) {
    const bar = el("div", null, "ramp");
    bar.style.background = `linear-gradient(to right, ${stops.map(([p, c]) => `${c} ${p * 100}%`).join(", ")})`;
    const ends = el("div", null, "ramp-ends");
    ends.append(el("span", low), el("span", high));
    const wrap = el("div", null, "ramp-wrap");
    wrap.dir = "ltr";
    wrap.append(bar, ends);
    return wrap;
  }

  function drawLegend() {
    const box = $("map-legend");
    box.replaceChildren();
    const mode = $("color-by").value;
    box.append(el("h3", gettext("Tiles")));
    if (mode === "answer") {
      const list = el("ul", null, "swatches");
      for (const a of answers) list.append(swatch(answerColour(a.key), answerLabel(a.key)));
      list.append(swatch(null, gettext("no consensus yet"), "swatch empty"));
      box.append(list);
      box.append(el("p", gettext("Grouped cells: the most frequent answer, stronger where more tiles share it."), "note"));
    } else if (mode === "progress") {
      box.append(gradient(PROGRESS_RAMP, gettext("no votes"), interpolate(gettext("%s votes or retired"), [numbers.format(config.redundancy)])));
    } else {
      box.append(gradient(UNIT_RAMP, decimals.format(0), decimals.format(1)));
      const list = el("ul", null, "swatches");
      list.append(swatch(null, gettext("no consensus yet"), "swatch empty"));
      box.append(list);
    }
    const contested = el("ul", null, "swatches");
    contested.append(swatch(null, gettext("contested (yellow outline)"), "swatch contested"));
    box.append(contested);
    box.append(el("h3", gettext("Destroyed buildings")));
    box.append(gradient(BUILDING_RAMP, interpolate(gettext("confidence %s"), [decimals.format(0)]), decimals.format(1)));
    box.append(el("p", gettext("Bigger dots are surer; big white-ringed dots are clusters, sized by their count."), "note"));
  }

  // --- Controls -----------------------------------------------------------------------------------------------------------------
  for (const a of answers) {
    const option = el("option", answerLabel(a.key));
    option.value = a.key;
    $("filter-answer").append(option);
  }
  if ($("map-date")) $("map-date").addEventListener("change", () => {
    view.shown = Number($("map-date").value);
    if (view.compared === view.shown) { view.compared = null; $("map-compare").value = ""; }
    showImagery();
  });
  if ($("map-compare")) $("map-compare").addEventListener("change", () => {
    const value = $("map-compare").value;
    view.compared = value === "" || Number(value) === view.shown ? null : Number(value);
    if (value !== "" && view.compared === null) $("map-compare").value = "";
    showImagery();
  });
  if ($("map-swipe")) $("map-swipe").addEventListener("input", clipSwipe);
  $("color-by").addEventListener("change", () => { drawLegend(); tilesLayer.setStyle(tileStyle); reload(["tiles"]); });
  for (const id of ["filter-answer", "filter-contested", "show-tiles"]) $(id).addEventListener("change", () => reload(["tiles"]));
  for (const id of ["filter-min", "filter-max"]) $(id).addEventListener("change", () => reload(["tiles"]));
  $("filter-reviewed").addEventListener("change", () => reload());
  for (const id of ["building-min", "show-buildings", "date-from", "date-to"]) {
    if ($(id)) $(id).addEventListener("change", () => reload(["buildings"]));
  }
  $("reset-filters").addEventListener("click", () => {
    $("filter-answer").value = "";
    $("filter-min").value = "0";
    $("filter-max").value = "1";
    $("filter-contested").checked = false;
    $("filter-reviewed").value = "";
    $("building-min").value = "0.5";
    if ($("date-from")) { $("date-from").value = ""; $("date-to").value = ""; }
    reload();
  });
  $("panel-toggle").addEventListener("click", () => {
    const open = $("panel-toggle").getAttribute("aria-expanded") !== "true";
    $("panel-toggle").setAttribute("aria-expanded", String(open));
    $("panel-body").hidden = !open;
  });
  if (window.matchMedia("(max-width: 40rem)").matches) {
    $("panel-toggle").setAttribute("aria-expanded", "false");
    $("panel-body").hidden = true;
  }

  map.on("move zoomend viewreset", clipSwipe);
  map.on("moveend", () => reload());
  map.on("resize", clipSwipe);
  if (config.extent) {
    const [w, s, e, n] = config.extent;
    map.fitBounds([[s, w], [n, e]], {animate: false});
  } else {
    map.setView([20, 0], 2);
  }
  showImagery();
  drawLegend();
  reload();

  window.ConsensusMap = {map, popupFor, reload, popupExtensions: hooks.popupExtensions,
                         paramExtensions: hooks.paramExtensions, reviewUrl: root.dataset.reviewUrl || ""};
})();
