// The published results for a volunteer: imagery, the tiles coloured by the consensus (reviews applied) and the
// destroyed buildings, with the volunteer's own tiles outlined and the confirmed buildings they marked highlighted.
//
// Talks to the same JSON API as any client:
//   GET /api/v1/layers/<id>/xyz/{z}/{x}/{y}.webp?v=<version>          imagery, one Leaflet tile layer per date
//   GET /api/v1/projects/<slug>/results/tiles.geojson?bbox=w,s,e,n      tiles, "mine" on the volunteer's own
//   GET /api/v1/projects/<slug>/results/buildings.geojson?bbox=w,s,e,n  buildings, "mine" on those they marked
// The overlays are reloaded for the view after every move (a stale request is aborted).
//
// On a phone or tablet the map is part of a longer page: a one-finger drag scrolls the page (Leaflet's dragging is
// off, so its CSS leaves the browser the one-finger pans), two fingers move and zoom the map (Leaflet's pinch follows
// the fingers' midpoint), and a one-finger drag on the map says so.
(() => {
  "use strict";
  const root = document.getElementById("results");
  const config = JSON.parse(document.getElementById("results-config").textContent);
  const $ = (id) => document.getElementById(id);
  const lang = document.documentElement.lang || "en";
  const numbers = new Intl.NumberFormat(lang);
  const decimals = new Intl.NumberFormat(lang, {minimumFractionDigits: 2, maximumFractionDigits: 2});
  // The default answers are translated (msgids shared with the tagging page); a project's own wording is shown as written.
  gettext_noop("Destroyed"); gettext_noop("Damaged"); gettext_noop("No damage"); gettext_noop("Can't tell");

  const ANSWER_COLOURS = {destroyed: "#d7191c", damaged: "#fd8d3c", no_damage: "#1a9641", cant_tell: "#9e9e9e"};
  const PALETTE = ["#7b3294", "#0571b0", "#e6ab02", "#66a61e", "#e7298a", "#a6761d"];
  const MINE = "#00e5ff";  // the volunteer's own: cyan stands out on imagery and on every answer colour
  const DEBOUNCE_MS = 150;
  const answers = config.answers;
  const answerByKey = Object.fromEntries(answers.map((a) => [a.key, a]));
  const answerLabel = (key) => (answerByKey[key] ? gettext(answerByKey[key].label) : key);
  const answerColour = (key) => ANSWER_COLOURS[key] || PALETTE[answers.findIndex((a) => a.key === key) % PALETTE.length] || "#555";

  // --- Map and imagery ----------------------------------------------------------------------------------------------
  const layers = config.layers;
  const maxZoom = Math.max(20, ...layers.map((l) => l.maxzoom + 1));
  const touchFirst = L.Browser.mobile || window.matchMedia("(pointer: coarse)").matches;
  const map = L.map("results-map", {zoomSnap: 1, minZoom: 2, maxZoom, keyboardPanDelta: 120, attributionControl: false,
                                    dragging: !touchFirst});
  const renderer = L.canvas({padding: 0.25});
  const imagery = layers.map((l) => L.tileLayer(l.url, {
    bounds: L.latLngBounds([[l.bounds[1], l.bounds[0]], [l.bounds[3], l.bounds[2]]]),
    minZoom: Math.max(0, l.minzoom - 2), minNativeZoom: l.minzoom, maxNativeZoom: l.maxzoom, maxZoom,
    tileSize: 256, keepBuffer: 1, className: "imagery"}));
  let shown = layers.length - 1;
  function showImagery() {
    imagery.forEach((layer, i) => {
      if (i === shown && !map.hasLayer(layer)) layer.addTo(map);
      if (i !== shown && map.hasLayer(layer)) layer.remove();
    });
  }

  // --- Touch: one finger scrolls the page, two move the map --------------------------------------------------------------
  const HINT_MS = 1500;
  const HINT_AFTER_PX = 10;  // a tap, or a finger that barely moves, is not a drag
  function explainTwoFingers() {
    const hint = $("results-touch-hint");
    hint.textContent = gettext("Use two fingers to move the map");
    let start = null;
    let hideTimer = null;
    const show = (on) => {
      clearTimeout(hideTimer);
      hint.classList.toggle("shown", on);
      root.dataset.touchHint = on ? "1" : "0";
    };
    const container = map.getContainer();
    container.addEventListener("touchstart", (event) => {
      start = event.touches.length === 1 ? [event.touches[0].clientX, event.touches[0].clientY] : null;
      if (event.touches.length > 1) show(false);
    }, {passive: true});
    container.addEventListener("touchmove", (event) => {
      if (!start || event.touches.length !== 1) return;
      const t = event.touches[0];
      if (Math.hypot(t.clientX - start[0], t.clientY - start[1]) >= HINT_AFTER_PX) show(true);
    }, {passive: true});
    container.addEventListener("touchend", (event) => {
      if (event.touches.length === 0 && hint.classList.contains("shown")) hideTimer = setTimeout(() => show(false), HINT_MS);
      start = null;
    }, {passive: true});
  }
  root.dataset.touchPan = touchFirst ? "two-fingers" : "one-finger";
  if (touchFirst) explainTwoFingers();

  // --- Overlays --------------------------------------------------------------------------------------------------------
  const onlyMine = () => $("only-mine").checked;
  const tilesLayer = L.geoJSON(null, {
    style: tileStyle,
    filter: (feature) => !onlyMine() || feature.properties.mine,
    onEachFeature: (feature, layer) => layer.bindPopup(() => popupFor("tile", feature.properties), {maxWidth: 300}),
  }).addTo(map);
  const buildingsLayer = L.geoJSON(null, {
    pointToLayer: (feature, latlng) => buildingMarker(feature.properties, latlng),
    filter: (feature) => !onlyMine() || feature.properties.mine,
    onEachFeature: (feature, layer) => layer.bindPopup(() => popupFor("building", feature.properties), {maxWidth: 300}),
  }).addTo(map);
  const requests = overlayRequests({root, status: $("results-status")});  // overlays.js
  const answered = {tiles: null, buildings: null};  // the last answers, kept to redraw without asking again

  function tileStyle(feature) {
    const props = feature.properties;
    const colour = props.label ? answerColour(props.label) : null;
    if (props.mine) {
      return {renderer, color: MINE, weight: 3, opacity: 1, fill: Boolean(colour), fillColor: colour || MINE,
              fillOpacity: colour ? 0.3 : 0};
    }
    if (!colour) return {renderer, color: "#ffffff", weight: 0.5, opacity: 0.5, fill: false};
    return {renderer, color: colour, weight: 0.6, opacity: 0.8, fillColor: colour, fillOpacity: 0.25};
  }

  function buildingMarker(props, latlng) {
    if (props.mine) {
      return L.circleMarker(latlng, {renderer, radius: 8, color: "#111111", weight: 2.5, fillColor: MINE, fillOpacity: 1});
    }
    return L.circleMarker(latlng, {renderer, radius: 5, color: "#ffffff", weight: 1.5, fillColor: "#d7191c", fillOpacity: 0.95});
  }

  function bbox() {
    const b = map.getBounds().pad(0.05);
    const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
    return [clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90), clamp(b.getEast(), -180, 180),
            clamp(b.getNorth(), -90, 90)].map((v) => v.toFixed(6)).join(",");
  }

  function draw(kind) {
    const layer = kind === "tiles" ? tilesLayer : buildingsLayer;
    layer.clearLayers();
    const data = answered[kind];
    if (data && $(kind === "tiles" ? "show-tiles" : "show-buildings").checked) layer.addData(data);
    if (kind === "tiles") buildingsLayer.eachLayer((marker) => marker.bringToFront());
    else buildingsLayer.eachLayer((marker) => { if (marker.feature.properties.mine) marker.bringToFront(); });
    countDrawn();
  }

  function load(kind) {
    const url = `${kind === "tiles" ? config.tiles_url : config.buildings_url}?bbox=${bbox()}`;
    requests.load(kind, url, (data) => {
      answered[kind] = data;
      draw(kind);
    });
  }

  function countDrawn() {
    const tiles = tilesLayer.getLayers();
    const buildings = buildingsLayer.getLayers();
    const mineTiles = tiles.filter((l) => l.feature.properties.mine).length;
    const mineBuildings = buildings.filter((l) => l.feature.properties.mine).length;
    Object.assign(root.dataset, {tilesDrawn: tiles.length, buildingsDrawn: buildings.length,
                                 mineTiles, mineBuildings});
    const parts = [];
    if ($("show-tiles").checked && answered.tiles) {
      parts.push(interpolate(ngettext("%(n)s tile, %(mine)s of them yours", "%(n)s tiles, %(mine)s of them yours", tiles.length),
                             {n: numbers.format(tiles.length), mine: numbers.format(mineTiles)}, true));
    }
    if ($("show-buildings").checked && answered.buildings) {
      parts.push(interpolate(ngettext("%(n)s destroyed building, %(mine)s marked by you",
                                      "%(n)s destroyed buildings, %(mine)s marked by you", buildings.length),
                             {n: numbers.format(buildings.length), mine: numbers.format(mineBuildings)}, true));
    }
    let text = parts.length ? interpolate(gettext("In view: %s"), [parts.join(" · ")]) : "";
    if ((answered.tiles && answered.tiles.properties.truncated) || (answered.buildings && answered.buildings.properties.truncated)) {
      text += " " + gettext("Zoom in to see everything.");
    }
    requests.show(text);
  }

  let timer = null;
  function reload() {
    clearTimeout(timer);
    timer = setTimeout(() => { load("tiles"); load("buildings"); }, DEBOUNCE_MS);
  }

  // --- Pop-ups and legend ------------------------------------------------------------------------------------------------
  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (className) node.className = className;
    return node;
  }

  function popupFor(kind, props) {
    const box = el("div", null, `map-popup ${kind}`);
    box.dir = document.documentElement.dir || "ltr";
    const dl = el("dl", null, "facts");
    const fact = (term, value) => { if (value !== null && value !== undefined) dl.append(el("dt", term), el("dd", value)); };
    if (kind === "tile") {
      box.append(el("h3", gettext("Tile")));
      fact(gettext("Consensus"), props.label ? answerLabel(props.label) : gettext("none yet"));
      fact(gettext("Confidence"), props.confidence === null ? null : decimals.format(props.confidence));
      box.append(dl);
      if (props.mine) box.append(el("p", gettext("You tagged this tile."), "badge mine"));
    } else {
      box.append(el("h3", gettext("Destroyed building")));
      fact(gettext("Confidence"), decimals.format(props.confidence));
      if (props.first_destroyed) {
        fact(gettext("Destroyed"), props.last_intact
          ? interpolate(gettext("between %(intact)s and %(destroyed)s"), {intact: props.last_intact, destroyed: props.first_destroyed}, true)
          : interpolate(gettext("by %s"), [props.first_destroyed]));
      }
      box.append(dl);
      if (props.mine) box.append(el("p", gettext("You marked this building."), "badge mine"));
    }
    if (props.reviewed) box.append(el("p", gettext("Checked by a coordinator"), "badge"));
    return box;
  }

  for (const a of answers) {
    const item = el("li");
    const mark = el("span", null, "swatch");
    mark.style.background = answerColour(a.key);
    item.append(mark, document.createTextNode(" " + answerLabel(a.key)));
    $("answer-legend").append(item);
  }

  // --- Controls -------------------------------------------------------------------------------------------------------
  $("show-tiles").addEventListener("change", () => draw("tiles"));
  $("show-buildings").addEventListener("change", () => draw("buildings"));
  $("only-mine").addEventListener("change", () => { draw("tiles"); draw("buildings"); });
  if ($("results-date")) $("results-date").addEventListener("change", () => { shown = Number($("results-date").value); showImagery(); });
  map.on("moveend", reload);

  showImagery();
  if (config.extent) map.fitBounds([[config.extent[1], config.extent[0]], [config.extent[3], config.extent[2]]]);
  else map.setView([0, 0], 2);
  reload();
  window.ProjectResults = {map, reload};
})();
