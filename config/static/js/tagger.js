// The tagging page: one tile at a time, points on destroyed buildings, an answer, the next tile already loaded.
//
// Talks to the same JSON API as any client:
//   POST /api/v1/projects/<slug>/tasks/next/            {exclude: [tile on screen]}  -> task, or 204 when done
//   POST /api/v1/tiles/<id>/classifications/            {answer, marks: [{x, y, date}], seconds}
//   POST /api/v1/tiles/<id>/skip/ and .../reports/      give the tile back
//   POST /api/v1/leases/<id>/renew/                     while the volunteer is active
//   GET  /api/v1/projects/<slug>/tutorial/, POST .../tutorial/practice/<tile>/ and .../tutorial/done/
// Tile pixels (x right, y down, 0..size) are shown in Leaflet's L.CRS.Simple as LatLng(-y, x).
(() => {
  "use strict";
  const root = document.getElementById("tagger");
  const slug = root.dataset.slug;
  const dates = JSON.parse(document.getElementById("tagger-dates").textContent);
  const multiDate = dates.length > 1;
  const $ = (id) => document.getElementById(id);
  const csrf = (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";
  const RENEW_EVERY_MS = 60_000;
  const NOT_OPEN = "project_not_open";  // the error code of a project paused, finished or back to draft
  const DATE_COLOURS = ["#ffd400", "#ff3d7f", "#35d0ff", "#8cff5a", "#ff9f1c"];
  // The default answers and questions are translated; a project's own wording is shown as written.
  gettext_noop("Destroyed"); gettext_noop("Damaged"); gettext_noop("No damage"); gettext_noop("Can't tell");
  gettext_noop("Do you see destroyed buildings on this image?"); gettext_noop("Do you see destroyed buildings?");
  const label = (answer) => gettext(answer.label);

  const state = {
    mode: "tag",          // "practice" in the tutorial, "tag" afterwards
    task: null,           // what is on screen: {tile, lease, answers, question}
    upcoming: null,       // the next task, fetched while this one is on screen (a Promise)
    marks: [],            // {x, y, date, markers: [L.CircleMarker...]}
    answer: null,
    shownAt: 0,
    dateIndex: multiDate ? dates.length - 1 : 0,  // the image shown (flick); the later one first
    compare: "flick",
    tutorial: null, practice: [], practiceIndex: 0,
    sent: 0, busy: false, leaseTimer: null, leaseEnds: 0, lastRenew: 0, feedbackLayer: null,
  };

  // --- API --------------------------------------------------------------------------------------------------
  async function api(path, {method = "GET", body} = {}) {
    const headers = {"Accept": "application/json"};
    if (method !== "GET") { headers["X-CSRFToken"] = csrf; headers["Content-Type"] = "application/json"; }
    let response;
    for (let attempt = 0; ; attempt++) {
      try {
        response = await fetch(path, {method, headers, credentials: "same-origin",
                                      body: body === undefined ? undefined : JSON.stringify(body)});
        break;
      } catch (networkError) {
        // A vote sent twice is stored once (the server answers the retry with the stored vote).
        if (attempt >= 3) throw new Error(gettext("The network is down. Your points are kept; try again."));
        await new Promise((r) => setTimeout(r, 800 * 2 ** attempt));
      }
    }
    if (response.status === 204) return {status: 204, message: response.headers.get("X-Message")};
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((data.error && data.error.message) || response.statusText);
      error.status = response.status;
      error.code = data.error && data.error.code;
      throw error;
    }
    return data;
  }

  // --- Maps ---------------------------------------------------------------------------------------------------
  function makeMap(id) {
    return L.map(id, {crs: L.CRS.Simple, minZoom: -3, maxZoom: 4, zoomSnap: 0.25, attributionControl: false,
                      zoomControl: true, keyboardPanDelta: 60, doubleClickZoom: false});
  }
  const mapA = makeMap("map-a");
  let mapB = null;
  let overlaysA = [];
  let overlaysB = [];
  const toLatLng = (x, y) => L.latLng(-y, x);

  function bounds(size) { return L.latLngBounds([[-size, 0], [0, size]]); }

  function showImages(task) {
    for (const o of overlaysA.concat(overlaysB)) o.remove();
    const b = bounds(task.tile.size);
    overlaysA = task.tile.images.map((image) => L.imageOverlay(image.url, b, {
      alt: interpolate(gettext("Image of %s"), [image.date]), className: "tile-image"}));
    if (mapB) overlaysB = task.tile.images.map((image) => L.imageOverlay(image.url, b, {className: "tile-image"}));
    mapA.setMaxBounds(b.pad(2));
    mapA.fitBounds(b, {animate: false});
    if (mapB) { mapB.setMaxBounds(b.pad(2)); mapB.fitBounds(b, {animate: false}); }
    applyCompare();
  }

  function applyCompare() {
    const images = state.task ? state.task.tile.images : [];
    const n = images.length;
    for (const o of overlaysA.concat(overlaysB)) o.remove();
    if (!n) return;
    const later = state.dateIndex;
    if (state.compare === "flick" || n === 1) {
      overlaysA[later].addTo(mapA);
      $("label-a").textContent = n > 1 ? images[later].date : multiDate ? lacking(images) : "";
      $("label-b").textContent = "";
    } else if (state.compare === "swipe") {
      const earlier = later === 0 ? 1 : later - 1;
      overlaysA[earlier].addTo(mapA);
      overlaysA[later].addTo(mapA);
      $("label-a").textContent = `${images[earlier].date} ◀ ▶ ${images[later].date}`;
      clipSwipe();
    } else {
      const earlier = later === 0 ? 1 : later - 1;
      overlaysA[later].addTo(mapA);
      overlaysB[earlier].addTo(mapB);
      $("label-a").textContent = images[later].date;
      $("label-b").textContent = images[earlier].date;
    }
    for (const o of overlaysA) { const el = o.getElement(); if (el && state.compare !== "swipe") el.style.clipPath = ""; }
    $("mode-label").textContent = state.mode === "practice"
      ? interpolate(gettext("Practice %(n)s of %(total)s"), {n: state.practiceIndex + 1, total: state.practice.length}, true)
      : "";
    redrawMarks();
  }

  // A tile of a multi-date project may lack a date (the images' footprints differ): its one image, and which not.
  function lacking(images) {
    const missing = dates.filter((d) => !images.some((image) => image.date === d));
    return interpolate(gettext("%(date)s (no image of %(missing)s on this tile)"),
                       {date: images[0].date, missing: missing.join(", ")}, true);
  }

  function clipSwipe() {
    const top = overlaysA[state.dateIndex];
    const el = top && top.getElement();
    // Nothing to swipe to on a tile with one image: it stays whole.
    if (el) el.style.clipPath = overlaysA.length > 1 ? `inset(0 0 0 ${$("swipe").value}%)` : "";
  }

  function setCompare(mode) {
    state.compare = mode;
    for (const b of document.querySelectorAll("#date-bar [data-mode]")) b.setAttribute("aria-pressed", String(b.dataset.mode === mode));
    $("swipe-box").hidden = mode !== "swipe";
    const side = mode === "side";
    $("map-b").hidden = !side;
    $("map-b").setAttribute("aria-hidden", String(!side));
    $("views").classList.toggle("side", side);
    if (side && !mapB) {
      mapB = makeMap("map-b");
      syncMaps(mapA, mapB);
      mapB.on("click", (e) => { const date = dateOfMap(mapB); if (date !== undefined) addMark(e.latlng, date); });
    }
    mapA.invalidateSize();
    if (mapB) mapB.invalidateSize();
    if (state.task) { if (side) showImages(state.task); else applyCompare(); }
  }

  function syncMaps(a, b) {
    let syncing = false;
    const follow = (from, to) => from.on("move", () => {
      if (syncing) return;
      syncing = true; to.setView(from.getCenter(), from.getZoom(), {animate: false}); syncing = false;
    });
    follow(a, b); follow(b, a);
  }

  // The date a point records: the image it was put on (undefined: no image on that map, on a tile lacking a date).
  function dateOfMap(map) {
    if (!multiDate) return null;
    const images = state.task.tile.images;
    const image = map === mapB ? images[state.dateIndex === 0 ? 1 : state.dateIndex - 1] : images[state.dateIndex];
    return image && image.date;
  }

  // --- Marks ---------------------------------------------------------------------------------------------------
  function addMark(latlng, date) {
    if (!state.task || state.busy || state.feedbackLayer) return;
    const size = state.task.tile.size;
    const x = latlng.lng;
    const y = -latlng.lat;
    if (x < 0 || y < 0 || x > size || y > size) return;
    state.marks.push({x: Math.round(x * 10) / 10, y: Math.round(y * 10) / 10, date, markers: []});
    const damage = state.task.answers.find((a) => a.damage);
    if (damage && !(answerOf(state.answer) || {}).damage) selectAnswer(damage.key);
    redrawMarks();
    touch();
    say(interpolate(ngettext("%s point", "%s points", state.marks.length), [state.marks.length]));
  }

  function removeMark(mark) {
    for (const m of mark.markers) m.remove();
    state.marks = state.marks.filter((m) => m !== mark);
    redrawMarks();
    touch();
    say(interpolate(gettext("Point removed; %s left"), [state.marks.length]));
  }

  function redrawMarks() {
    for (const mark of state.marks) {
      for (const m of mark.markers) m.remove();
      const colour = DATE_COLOURS[Math.max(0, dates.indexOf(mark.date)) % DATE_COLOURS.length];
      const maps = mapB && state.compare === "side" ? [mapA, mapB] : [mapA];
      mark.markers = maps.map((map) => L.circleMarker(toLatLng(mark.x, mark.y), {
        radius: 10, color: "#000", weight: 2, fillColor: colour, fillOpacity: 0.85, bubblingMouseEvents: false,
        className: "mark"}).on("click", () => removeMark(mark)).addTo(map));
    }
  }

  function clearMarks() {
    for (const mark of state.marks) for (const m of mark.markers) m.remove();
    state.marks = [];
  }

  mapA.on("click", (e) => addMark(e.latlng, dateOfMap(mapA)));

  // --- Answers --------------------------------------------------------------------------------------------------
  const answerOf = (key) => state.task && state.task.answers.find((a) => a.key === key);

  function renderAnswers(answers) {
    $("answers").replaceChildren(...answers.map((answer, i) => {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.key = answer.key;
      b.setAttribute("aria-pressed", "false");
      b.className = answer.damage ? "answer damage" : "answer";
      b.append(label(answer), " ");
      const k = document.createElement("kbd"); k.textContent = String(i + 1); b.append(k);
      b.addEventListener("click", () => selectAnswer(answer.key));
      return b;
    }));
  }

  function selectAnswer(key) {
    state.answer = key;
    for (const b of $("answers").children) b.setAttribute("aria-pressed", String(b.dataset.key === key));
    touch();
  }

  // --- Showing a task ----------------------------------------------------------------------------------------------
  function show(task) {
    state.task = task;
    root.dataset.tile = task.tile.id;  // for people reading the page source, and for the browser tests
    root.dataset.mode = state.mode;
    state.answer = null;
    clearMarks();
    clearFeedback();
    renderAnswers(task.answers);
    $("question").textContent = gettext(task.question);
    state.dateIndex = Math.max(0, task.tile.images.length - 1);  // every tile opens on its latest image
    showImages(task);
    state.shownAt = performance.now();
    startLease(task.lease);
    say("");
    if (state.mode === "tag") state.upcoming = fetchNext([task.tile.id]);
  }

  function preload(task) {
    if (task && task.tile) for (const image of task.tile.images) { const i = new Image(); i.src = image.url; }
    return task;
  }

  function fetchNext(exclude) {
    return api(`/api/v1/projects/${slug}/tasks/next/`, {method: "POST", body: {exclude}})
      .then(preload).catch((error) => ({error}));
  }

  async function advance() {
    let next = state.upcoming ? await state.upcoming : null;
    state.upcoming = null;
    // The prefetched tile may be gone (the lease was for a tile that filled up): ask again.
    if (!next || next.error || next.status === 204) next = await fetchNext([]);
    if (next.error && next.error.code === NOT_OPEN) return closed(next.error.message);
    if (next.error) return fail(next.error);
    if (next.status === 204) return finish();
    show(next);
  }

  function finish(message, heading = gettext("Thank you!")) {
    stopLease();
    state.upcoming = null;
    $("workspace").hidden = true;
    $("finished").hidden = false;
    $("finished-h").textContent = heading;
    // The server's own message (X-Message) is English; the page says the same in the volunteer's language.
    $("finished-text").textContent = message
      || gettext("You have seen every tile of this project that still needs votes. Thank you!");
    $("finished-h").focus();
  }

  // The project was paused or finished while the volunteer worked: no tile of it can be answered now, the one
  // prefetched neither, so the page says why instead of offering them.
  function closed(message) { finish(message, gettext("Tagging is closed for now")); }

  // --- Lease -------------------------------------------------------------------------------------------------------
  function startLease(lease) {
    stopLease();
    if (!lease) { $("lease").textContent = ""; return; }
    state.leaseEnds = Date.now() + lease.seconds_left * 1000;
    state.lastRenew = Date.now();
    tickLease();
    state.leaseTimer = setInterval(tickLease, 1000);
  }

  function stopLease() { clearInterval(state.leaseTimer); state.leaseTimer = null; }

  function tickLease() {
    const left = Math.max(0, Math.round((state.leaseEnds - Date.now()) / 1000));
    const text = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    $("lease").textContent = left
      ? interpolate(gettext("%s left on this tile"), [text])
      : gettext("Time is up for this tile; your answer still counts if you send it now.");
    $("lease").classList.toggle("late", left < 60);
  }

  function touch() {
    const lease = state.task && state.task.lease;
    if (!lease || state.mode !== "tag" || Date.now() - state.lastRenew < RENEW_EVERY_MS) return;
    if (Date.now() > state.leaseEnds) return;
    state.lastRenew = Date.now();
    api(`/api/v1/leases/${lease.id}/renew/`, {method: "POST"})
      .then((renewed) => { state.leaseEnds = Date.now() + renewed.seconds_left * 1000; })
      .catch(() => {});
  }

  // --- Sending -------------------------------------------------------------------------------------------------------
  async function submit() {
    if (!state.task || state.busy) return;
    if (state.feedbackLayer) return continueAfterFeedback();
    const answer = answerOf(state.answer);
    if (!answer) { say(gettext("Choose an answer first (keys 1 to %s).").replace("%s", state.task.answers.length), true); return; }
    if (state.marks.length && !answer.damage) {
      say(gettext("Your points go with an answer that says there is damage. Remove them (Z) or change your answer."), true);
      return;
    }
    const marks = state.marks.map((m) => (m.date ? {x: m.x, y: m.y, date: m.date} : {x: m.x, y: m.y}));
    const seconds = Math.round((performance.now() - state.shownAt) / 100) / 10;
    state.busy = true;
    root.classList.add("busy");
    try {
      if (state.mode === "practice") {
        const feedback = await api(`/api/v1/projects/${slug}/tutorial/practice/${state.task.tile.id}/`,
                                   {method: "POST", body: {answer: answer.key, marks}});
        showFeedback(feedback, true);
      } else {
        const stored = await api(`/api/v1/tiles/${state.task.tile.id}/classifications/`,
                                 {method: "POST", body: {answer: answer.key, marks, seconds}});
        state.sent += 1;
        $("session-count").textContent = interpolate(ngettext("%s tile sent", "%s tiles sent", state.sent), [state.sent]);
        if (stored.gold) showFeedback(stored.gold, false);
        else await advance();
      }
    } catch (error) {
      // Refused because the project closed: say so instead of offering its tiles. Refused otherwise (the tile
      // no longer theirs): the next tile, then why, so that showing the next tile does not wipe the reason.
      if (error.status === 409 && error.code === NOT_OPEN) closed(error.message);
      else if (error.status === 409) { await advance(); say(error.message, true); }
      else fail(error);
    } finally {
      state.busy = false;
      root.classList.remove("busy");
    }
  }

  async function skip() {
    if (!state.task || state.busy) return;
    if (state.mode === "practice") return nextPractice();
    state.busy = true;
    try {
      await api(`/api/v1/tiles/${state.task.tile.id}/skip/`, {method: "POST"});
      await advance();
    } catch (error) { fail(error); } finally { state.busy = false; }
  }

  function report() {
    if (!state.task || state.busy || state.mode === "practice") return;
    $("report-dialog").showModal();
  }

  $("report-dialog").addEventListener("close", async () => {
    if ($("report-dialog").returnValue !== "send" || !state.task) return;
    const reason = new FormData($("report-form")).get("reason");
    state.busy = true;
    try {
      await api(`/api/v1/tiles/${state.task.tile.id}/reports/`,
                {method: "POST", body: {reason, note: $("report-note").value}});
      $("report-note").value = "";
      say(gettext("Thank you, the image is reported."));
      await advance();
    } catch (error) { fail(error); } finally { state.busy = false; }
  });

  function fail(error) {
    say(error.status === 429 ? gettext("You are going very fast; wait a moment and send again.") : error.message, true);
  }

  function say(text, alert = false) {
    $("status").textContent = text;
    $("status").classList.toggle("alert", alert);
  }

  // --- Feedback on known tiles (practice and gold) --------------------------------------------------------------
  function showFeedback(feedback, practice) {
    const layer = L.layerGroup().addTo(mapA);
    const ring = (p, cls) => L.circleMarker(toLatLng(p[0], p[1]), {radius: 16, weight: 4, fill: false,
                                                                    className: `feedback ${cls}`, interactive: false}).addTo(layer);
    feedback.found.forEach((p) => ring(p, "found"));
    feedback.missed.forEach((p) => ring(p, "missed"));
    feedback.wrong_marks.forEach((p) => ring(p, "wrong"));
    state.feedbackLayer = layer;
    const right = answerOf(feedback.answer);
    const items = [];
    items.push(feedback.correct ? gettext("Your answer is right.")
                                : interpolate(gettext("The right answer was: %s."), [right ? label(right) : feedback.answer]));
    if (feedback.found.length) items.push(interpolate(ngettext("Well spotted: you found %s destroyed building.", "Well spotted: you found %s destroyed buildings.", feedback.found.length), [feedback.found.length]));
    if (feedback.missed.length) items.push(interpolate(ngettext("You missed %s building (orange ring).", "You missed %s buildings (orange rings).", feedback.missed.length), [feedback.missed.length]));
    if (feedback.wrong_marks.length) items.push(interpolate(ngettext("%s point is not on a destroyed building (red ring).", "%s points are not on a destroyed building (red rings).", feedback.wrong_marks.length), [feedback.wrong_marks.length]));
    $("feedback-h").textContent = practice ? gettext("How did you do?") : gettext("This was a tile whose answer we know");
    $("feedback-list").replaceChildren(...items.map((t) => { const li = document.createElement("li"); li.textContent = t; return li; }));
    $("feedback").showModal();
    say(items.join(" "));
  }

  function clearFeedback() {
    if (state.feedbackLayer) { state.feedbackLayer.remove(); state.feedbackLayer = null; }
  }

  // After the dialog closes the rings stay on the image until the volunteer moves on (Enter or Continue).
  $("feedback").addEventListener("close", () => {
    say(gettext("The rings show the right answer. Press Enter or Send to go on."));
    $("submit").focus();
  });

  function continueAfterFeedback() {
    clearFeedback();
    if (state.mode === "practice") return nextPractice();
    return advance();
  }

  // --- Tutorial ---------------------------------------------------------------------------------------------------
  async function startTutorial() {
    const tutorial = await api(`/api/v1/projects/${slug}/tutorial/`);
    $("tutorial").hidden = false;
    $("workspace").hidden = true;
    $("tutorial-answers").replaceChildren(...tutorial.answers.map((a) => {
      const li = document.createElement("li");
      const strong = document.createElement("strong"); strong.textContent = label(a);
      li.append(strong, " — ", a.abstain ? gettext("when you really cannot tell; it does not count for either side.")
                               : a.damage ? gettext("put a point on each destroyed building.")
                               : gettext("no point needed."));
      return li;
    }));
    state.tutorial = tutorial;
    state.practice = tutorial.practice;
    $("examples").replaceChildren(...tutorial.examples.map(example));
    $("tutorial-practice-note").textContent = state.practice.length
      ? interpolate(ngettext("Then try %s practice tile: we show you what you found and what you missed.", "Then try %s practice tiles: we show you what you found and what you missed.", state.practice.length), [state.practice.length])
      : "";
    $("tutorial-start").textContent = state.practice.length ? gettext("Start the practice") : gettext("Start tagging");
    $("tutorial-start").onclick = () => {
      $("tutorial").hidden = true;
      $("workspace").hidden = false;
      mapA.invalidateSize();
      // The button just pressed is hidden now; the image takes the focus, so keys (Enter, 1-9) act on the tile.
      $("map-a").focus();
      state.practiceIndex = 0;
      if (state.practice.length) { state.mode = "practice"; showPractice(); }
      else endTutorial();
    };
    $("tutorial-h").focus();
  }

  // An example: the latest image of a known tile with its buildings ringed, and its answer.
  function example(known) {
    const figure = document.createElement("figure");
    const frame = document.createElement("div");
    frame.className = "example-frame";
    const image = known.images[known.images.length - 1];
    const img = document.createElement("img");
    img.src = image.url;
    img.alt = interpolate(gettext("Example: %s"), [gettext(known.answer_label)]);
    frame.append(img);
    for (const [x, y] of known.marks) {
      const dot = document.createElement("span");
      dot.className = "example-mark";
      dot.style.left = `${(100 * x) / known.size}%`;
      dot.style.top = `${(100 * y) / known.size}%`;
      frame.append(dot);
    }
    const caption = document.createElement("figcaption");
    caption.textContent = known.marks.length
      ? interpolate(ngettext("%(answer)s: %(n)s destroyed building ringed", "%(answer)s: %(n)s destroyed buildings ringed", known.marks.length), {answer: gettext(known.answer_label), n: known.marks.length}, true)
      : gettext(known.answer_label);
    figure.append(frame, caption);
    return figure;
  }

  function showPractice() {
    const tutorial = state.tutorial;
    show({tile: state.practice[state.practiceIndex], lease: null, answers: tutorial.answers,
          question: tutorial.question});
  }

  function nextPractice() {
    state.practiceIndex += 1;
    if (state.practiceIndex < state.practice.length) showPractice();
    else endTutorial();
  }

  async function endTutorial() {
    state.mode = "tag";
    // The last practice tile is done: until the first real tile shows, keys must not answer it as a real one.
    state.task = null;
    clearMarks();
    clearFeedback();
    await api(`/api/v1/projects/${slug}/tutorial/done/`, {method: "POST"}).catch(() => {});
    say(gettext("Practice done. Now the real tiles: every answer counts."));
    $("mode-label").textContent = "";
    state.upcoming = null;
    await advance();
  }

  // --- Keyboard ---------------------------------------------------------------------------------------------------
  const KEYS = {KeyZ: "undo", KeyS: "skip", KeyD: "flick", KeyM: "centre", KeyB: "report", Enter: "submit",
                NumpadEnter: "submit"};
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if ($("workspace").hidden || document.querySelector("dialog[open]")) return;
    const target = event.target;
    if (target.matches("input, select, textarea")) return;
    const digit = /^(Digit|Numpad)([1-9])$/.exec(event.code);
    if (digit && state.task) {
      const answer = state.task.answers[Number(digit[2]) - 1];
      if (answer) { selectAnswer(answer.key); event.preventDefault(); }
      return;
    }
    const action = KEYS[event.code];
    if (!action) return;
    if (action === "submit" && target.matches("button") && target.id !== "submit") return;  // the button's own click
    event.preventDefault();
    ({undo, skip, flick, centre, report, submit})[action]();
  });

  function undo() {
    if (state.marks.length) removeMark(state.marks[state.marks.length - 1]);
  }

  function flick() {
    if (!multiDate || !state.task) return;
    if (state.compare !== "flick") setCompare("flick");
    state.dateIndex = (state.dateIndex + 1) % state.task.tile.images.length;
    applyCompare();
    say(interpolate(gettext("Showing %s"), [state.task.tile.images[state.dateIndex].date]));
  }

  function centre() { addMark(mapA.getCenter(), dateOfMap(mapA)); }

  // --- Wiring -------------------------------------------------------------------------------------------------------
  $("undo").addEventListener("click", undo);
  $("skip").addEventListener("click", skip);
  $("report").addEventListener("click", report);
  $("submit").addEventListener("click", submit);
  $("mark-centre").addEventListener("click", centre);
  $("swipe").addEventListener("input", clipSwipe);
  for (const b of document.querySelectorAll("#date-bar [data-mode]")) {
    // "Flick" pressed again (or tapped on a phone) shows the other date, like the D key.
    b.addEventListener("click", () => (b.dataset.mode === "flick" && state.compare === "flick" ? flick() : setCompare(b.dataset.mode)));
  }
  for (const type of ["pointerdown", "keydown", "wheel"]) document.addEventListener(type, touch, {passive: true});
  mapA.on("zoomend moveend", () => { if (state.compare === "swipe") clipSwipe(); });
  window.addEventListener("resize", () => { mapA.invalidateSize(); if (mapB) mapB.invalidateSize(); });

  if (root.dataset.open !== "1") {
    closed(gettext("This project is not open for tagging at the moment."));
    return;
  }
  $("date-bar").hidden = !multiDate;
  if (root.dataset.tutorial === "1") startTutorial().catch(fail);
  else { $("workspace").hidden = false; mapA.invalidateSize(); advance(); }
})();
