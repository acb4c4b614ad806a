// The managers' pages: project form, imagery upload, gold tiles, members; and helpers the dashboard shares.
//
// Every page talks to the JSON API like any client (session cookie + CSRF header):
//   POST /api/v1/projects/, GET/PATCH /api/v1/projects/<slug>/settings/
//   POST /api/v1/projects/<slug>/layers/ (multipart), GET /api/v1/layers/<id>/, POST /api/v1/layers/<id>/retry/
//   GET /api/v1/projects/<slug>/tiles/, GET/PUT/DELETE /api/v1/tiles/<id>/gold/
//   GET/POST/DELETE /api/v1/projects/<slug>/members/
// Tile pixels (x right, y down, 0..size) are shown in Leaflet's L.CRS.Simple as LatLng(-y, x), as on the tagging page.
(() => {
  "use strict";
  const lang = document.documentElement.lang || undefined;
  const $ = (id) => document.getElementById(id);
  const csrf = () => (document.cookie.match(/(?:^|; )csrftoken=([^;]+)/) || [])[1] || "";

  // --- Shared helpers (window.manage) -----------------------------------------------------------------------------
  async function api(path, {method = "GET", body} = {}) {
    const headers = {"Accept": "application/json"};
    if (method !== "GET") { headers["X-CSRFToken"] = csrf(); headers["Content-Type"] = "application/json"; }
    let response;
    try {
      response = await fetch(path, {method, headers, credentials: "same-origin",
                                    body: body === undefined ? undefined : JSON.stringify(body)});
    } catch (networkError) {
      throw new Error(gettext("The server cannot be reached. Check your connection and try again."));
    }
    if (response.status === 204) return null;
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw apiError(response.status, data);
    return data;
  }

  function apiError(status, data) {
    const error = new Error((data && data.error && data.error.message) || interpolate(gettext("Error %s"), [status]));
    error.status = status;
    error.fields = (data && data.error && data.error.fields) || {};
    return error;
  }

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (value === false || value === null || value === undefined) continue;
      if (name === "text") node.textContent = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name in node && typeof value !== "string") node[name] = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    node.append(...children.filter((c) => c !== null && c !== undefined));
    return node;
  }

  const number = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString(lang));
  const percent = (x) => (x === null || x === undefined ? "–" : `${Math.round(x * 100).toLocaleString(lang)}%`);
  const formatDate = (iso, options = {year: "numeric", month: "short", day: "numeric"}) => {
    if (!iso) return "–";
    const [y, m, d] = iso.split("-").map(Number);
    return new Date(Date.UTC(y, m - 1, d)).toLocaleDateString(lang, {timeZone: "UTC", ...options});
  };

  function say(node, text, {error = false} = {}) {
    node.textContent = text;
    node.classList.toggle("alert", error);
  }

  const STATUS = {draft: gettext("Draft"), active: gettext("Active"), paused: gettext("Paused"),
                  finished: gettext("Finished"), uploaded: gettext("Uploaded"), validating: gettext("Checking"),
                  tiling: gettext("Cutting into tiles"), ready: gettext("Ready"), failed: gettext("Failed"),
                  open: gettext("Open"), retired: gettext("Finished"), gold: gettext("Gold")};
  const statusLabel = (status) => STATUS[status] || status;
  const ROLES = {volunteer: gettext("Volunteer"), coordinator: gettext("Coordinator"), manager: gettext("Manager")};

  window.manage = {api, el, number, percent, formatDate, say, statusLabel, ROLES};

  // --- Project form (new and settings) --------------------------------------------------------------------------
  function projectForm(form) {
    const isNew = form.dataset.new === "1";
    const locked = form.dataset.locked === "1";
    const message = $("form-message");
    const answersBody = $("answers-body");
    const initial = JSON.parse($("project-answers").textContent);
    let slugTouched = false;

    function answerRow(answer) {
      const n = answersBody.rows.length + 1;
      const remove = el("button", {type: "button", class: "secondary", hidden: locked,
                                   "aria-label": interpolate(gettext("Remove answer %s"), [n]), text: gettext("Remove"),
                                   onclick: () => { row.remove(); renumber(); }});
      const row = el("tr", {},
        el("td", {}, el("input", {type: "text", name: "key", value: answer.key || "", required: true, readOnly: locked,
                                  pattern: "[a-z0-9_]+", maxlength: "40", "aria-label": interpolate(gettext("Key of answer %s"), [n])})),
        el("td", {}, el("input", {type: "text", name: "label", value: answer.label || "", maxlength: "80",
                                  "aria-label": interpolate(gettext("Label of answer %s"), [n])})),
        el("td", {}, el("input", {type: "checkbox", name: "damage", checked: !!answer.damage, disabled: locked,
                                  "aria-label": interpolate(gettext("Answer %s means damage (asks for points)"), [n])})),
        el("td", {}, el("input", {type: "checkbox", name: "abstain", checked: !!answer.abstain, disabled: locked,
                                  "aria-label": interpolate(gettext("Answer %s is \"can't tell\""), [n])})),
        el("td", {}, remove));
      answersBody.append(row);
    }

    function renumber() {
      [...answersBody.rows].forEach((row, i) => {
        const n = i + 1;
        row.querySelector("[name=key]").setAttribute("aria-label", interpolate(gettext("Key of answer %s"), [n]));
        row.querySelector("[name=label]").setAttribute("aria-label", interpolate(gettext("Label of answer %s"), [n]));
        row.querySelector("[name=damage]").setAttribute("aria-label", interpolate(gettext("Answer %s means damage (asks for points)"), [n]));
        row.querySelector("[name=abstain]").setAttribute("aria-label", interpolate(gettext("Answer %s is \"can't tell\""), [n]));
        row.querySelector("button").setAttribute("aria-label", interpolate(gettext("Remove answer %s"), [n]));
      });
    }

    function answers() {
      return [...answersBody.rows].map((row) => ({
        key: row.querySelector("[name=key]").value.trim(), label: row.querySelector("[name=label]").value.trim(),
        damage: row.querySelector("[name=damage]").checked, abstain: row.querySelector("[name=abstain]").checked}));
    }

    initial.forEach(answerRow);
    const add = $("add-answer");
    if (locked) add.hidden = true;
    add.addEventListener("click", () => {
      answerRow({});
      answersBody.rows[answersBody.rows.length - 1].querySelector("input").focus();
    });

    if (isNew) {
      const slugify = (text) => text.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "")
        .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 80);
      form.elements.slug.addEventListener("input", () => { slugTouched = true; });
      form.elements.name.addEventListener("input", () => {
        if (!slugTouched) form.elements.slug.value = slugify(form.elements.name.value);
      });
    }

    function values() {
      const f = form.elements;
      const confidence = f.retire_confidence.value.trim();
      return {
        name: f.name.value.trim(), question: f.question.value.trim(), instructions: f.instructions.value,
        answers: answers(), redundancy: Number(f.redundancy.value), is_public: f.is_public.checked,
        scheduling: f.scheduling.value, gold_rate: Number(f.gold_rate.value) / 100,
        retire_confidence: confidence === "" ? null : Number(confidence) / 100,
      };
    }

    function showError(error) {
      for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
      say(message, error.message, {error: true});
      const name = Object.keys(error.fields || {})[0];
      const field = name && (form.elements[name] || (name === "answers" && answersBody.querySelector("input")));
      if (field && field.setAttribute) { field.setAttribute("aria-invalid", "true"); field.focus(); }
      else message.focus();
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      say(message, gettext("Saving…"));
      const v = values();
      try {
        let slug = form.dataset.slug;
        if (isNew) {
          slug = form.elements.slug.value.trim();
          await api("/api/v1/projects/", {method: "POST", body: {
            slug, name: v.name, question: v.question, instructions: v.instructions, answers: v.answers,
            redundancy: v.redundancy, is_public: v.is_public, tile_size: Number(form.elements.tile_size.value),
            overlap: Number(form.elements.overlap.value)}});
          await api(`/api/v1/projects/${slug}/settings/`, {method: "PATCH", body: {
            scheduling: v.scheduling, gold_rate: v.gold_rate, retire_confidence: v.retire_confidence}});
          window.location.assign(`/projects/${slug}/upload/`);
          return;
        }
        await api(`/api/v1/projects/${slug}/settings/`, {method: "PATCH", body: v});
        for (const field of form.querySelectorAll("[aria-invalid]")) field.removeAttribute("aria-invalid");
        say(message, gettext("Saved."));
      } catch (error) {
        showError(error);
      } finally {
        button.disabled = false;
      }
    });
  }

  // --- Imagery upload -------------------------------------------------------------------------------------------
  function uploadPage(form) {
    const slug = form.dataset.slug;
    const message = $("upload-message");
    const sent = $("upload-progress");
    const sentText = $("upload-progress-text");
    const tiling = $("tiling-progress");
    const tilingText = $("tiling-progress-text");
    const retry = $("retry");
    let layerId = null;

    function setBar(bar, text, fraction, label) {
      bar.value = Math.round(fraction * 100);
      text.textContent = label;
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!form.reportValidity()) return;
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      retry.hidden = true;
      $("progress-box").hidden = false;
      setBar(sent, sentText, 0, "0%");
      setBar(tiling, tilingText, 0, gettext("Waiting for the upload"));
      say(message, gettext("Uploading…"));
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `/api/v1/projects/${slug}/layers/`);
      xhr.setRequestHeader("X-CSRFToken", csrf());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) setBar(sent, sentText, e.loaded / e.total, percent(e.loaded / e.total));
      });
      xhr.upload.addEventListener("load", () => {
        setBar(sent, sentText, 1, percent(1));
        say(message, gettext("Uploaded. The server is checking the file…"));
      });
      xhr.addEventListener("load", () => {
        button.disabled = false;
        let data = {};
        try { data = JSON.parse(xhr.responseText); } catch (e) { /* not JSON: an error page */ }
        if (xhr.status !== 202) {
          setBar(sent, sentText, 0, "");
          say(message, apiError(xhr.status, data).message, {error: true});
          return;
        }
        setBar(sent, sentText, 1, percent(1));
        say(message, gettext("The file is accepted; it is being cut into tiles."));
        form.reset();
        layerId = data.id;
        poll();
      });
      xhr.addEventListener("error", () => {
        button.disabled = false;
        say(message, gettext("The upload was interrupted. Check your connection and try again."), {error: true});
      });
      xhr.send(new FormData(form));
    });

    async function poll() {
      let layer;
      try {
        layer = await api(`/api/v1/layers/${layerId}/`);
      } catch (error) {
        say(message, error.message, {error: true});
        return;
      }
      const detail = layer.status === "ready"
        ? interpolate(ngettext("Ready: %s tile", "Ready: %s tiles", layer.tile_count), [number(layer.tile_count)])
        : interpolate(gettext("%(status)s: %(done)s of %(total)s grid cells"),
                      {status: statusLabel(layer.status), done: number(layer.tiles_done), total: number(layer.tiles_total)}, true);
      setBar(tiling, tilingText, layer.progress, `${percent(layer.progress)} · ${detail}`);
      if (layer.status === "ready") {
        say(message, gettext("The imagery is ready to be tagged."));
        listLayers();
      } else if (layer.status === "failed") {
        say(message, layer.error || gettext("Tiling failed."), {error: true});
        retry.hidden = false;
        listLayers();
      } else {
        setTimeout(poll, 1000);
      }
    }

    retry.addEventListener("click", async () => {
      retry.hidden = true;
      try {
        await api(`/api/v1/layers/${layerId}/retry/`, {method: "POST"});
        say(message, gettext("Trying again…"));
        poll();
      } catch (error) {
        say(message, error.message, {error: true});
      }
    });

    async function listLayers() {
      const body = $("layers");
      try {
        const layers = await api(`/api/v1/projects/${slug}/layers/`);
        body.replaceChildren(...layers.map((layer) => el("tr", {},
          el("td", {text: formatDate(layer.date)}), el("td", {text: layer.source || "–"}),
          el("td", {text: layer.files ? layer.files.map((f) => f.original_name).join(", ") : "–"}),
          el("td", {text: statusLabel(layer.status)}),
          el("td", {text: layer.status === "ready" ? number(layer.tile_count) : percent(layer.progress)}),
          el("td", {class: "error-text", text: layer.error || ""}))));
        if (!layers.length) body.replaceChildren(el("tr", {}, el("td", {colspan: "6", text: gettext("No imagery yet.")})));
      } catch (error) {
        say(message, error.message, {error: true});
      }
    }
    listLayers();
  }

  // --- Gold tiles -----------------------------------------------------------------------------------------------
  function goldPage(root) {
    const slug = root.dataset.slug;
    const answers = JSON.parse($("gold-answers").textContent);
    const message = $("gold-message");
    const grid = $("thumbs");
    const PAGE = 24;
    const state = {offset: 0, count: 0, tile: null, marks: [], markers: [], overlay: null};
    const map = L.map("gold-map", {crs: L.CRS.Simple, minZoom: -3, maxZoom: 4, zoomSnap: 0.25,
                                   attributionControl: false, keyboardPanDelta: 60, doubleClickZoom: false});
    const toLatLng = (x, y) => L.latLng(-y, x);
    const answerOf = (key) => answers.find((a) => a.key === key);
    const chosen = () => (root.querySelector("input[name=gold-answer]:checked") || {}).value;
    $("gold-answer-list").replaceChildren(...answers.map((answer, i) => el("p", {class: "check"},
      el("input", {type: "radio", name: "gold-answer", id: `gold-answer-${i}`, value: answer.key}),
      el("label", {for: `gold-answer-${i}`, text: gettext(answer.label) + (answer.damage ? ` (${gettext("points on the buildings")})` : "")}))));

    async function loadPage() {
      const filter = $("tile-filter").value;
      const query = `limit=${PAGE}&offset=${state.offset}${filter ? `&status=${filter}` : ""}`;
      try {
        const page = await api(`/api/v1/projects/${slug}/tiles/?${query}`);
        state.count = page.count;
        grid.replaceChildren(...page.results.map(thumb));
        if (!page.results.length) grid.replaceChildren(el("p", {text: gettext("No tiles here.")}));
        const last = Math.min(state.offset + PAGE, page.count);
        $("page-info").textContent = page.count
          ? interpolate(gettext("%(first)s–%(last)s of %(count)s tiles"),
                        {first: number(state.offset + 1), last: number(last), count: number(page.count)}, true)
          : "";
        $("prev-page").disabled = state.offset === 0;
        $("next-page").disabled = last >= page.count;
      } catch (error) {
        grid.replaceChildren(el("p", {class: "status-line alert", role: "alert", text: error.message}));
      }
    }

    function thumb(tile) {
      const image = tile.images[tile.images.length - 1];
      const name = interpolate(gettext("Tile %(col)s, %(row)s"), {col: tile.col, row: tile.row}, true);
      const button = el("button", {type: "button", class: `thumb ${tile.status}`, "data-tile": String(tile.id),
                                   "aria-pressed": String(state.tile && state.tile.id === tile.id),
                                   onclick: () => select(tile)},
        image ? el("img", {src: image.url, alt: "", loading: "lazy", width: "128", height: "128"}) : null,
        el("span", {class: "thumb-name", text: name}),
        el("span", {class: `pill ${tile.status}`, text: statusLabel(tile.status)}));
      return button;
    }

    async function select(tile) {
      state.tile = tile;
      for (const b of grid.querySelectorAll(".thumb")) b.setAttribute("aria-pressed", String(b.dataset.tile === String(tile.id)));
      $("editor").hidden = false;
      $("editor-title").textContent = interpolate(gettext("Tile %(col)s, %(row)s"), {col: tile.col, row: tile.row}, true);
      const dates = $("gold-date");
      dates.replaceChildren(...tile.images.map((image, i) => el("option", {value: String(i), text: formatDate(image.date)})));
      dates.value = String(tile.images.length - 1);
      $("date-box").hidden = tile.images.length < 2;
      showImage();
      clearMarks();
      say(message, "");
      try {
        const gold = await api(`/api/v1/tiles/${tile.id}/gold/`);
        for (const [x, y] of gold.marks) addMark(x, y, {quiet: true});
        setAnswer(gold.answer);
        $("remove-gold").hidden = gold.status !== "gold";
        say(message, gold.answer ? gettext("This is a gold tile. Change it and save, or make it an ordinary tile.")
                                 : gettext("Choose the answer and put a point on every destroyed building, then save."));
      } catch (error) {
        say(message, error.message, {error: true});
      }
      $("gold-map").focus();
    }

    function showImage() {
      const tile = state.tile;
      if (state.overlay) state.overlay.remove();
      const image = tile.images[Number($("gold-date").value)];
      const bounds = L.latLngBounds([[-tile.size, 0], [0, tile.size]]);
      if (image) {
        state.overlay = L.imageOverlay(image.url, bounds, {
          alt: interpolate(gettext("Image of %s"), [formatDate(image.date)]), className: "tile-image"}).addTo(map);
      }
      map.invalidateSize();
      map.setMaxBounds(bounds.pad(1));
      map.fitBounds(bounds, {animate: false});
    }

    function setAnswer(key) {
      for (const input of root.querySelectorAll("input[name=gold-answer]")) input.checked = input.value === key;
    }

    function addMark(x, y, {quiet = false} = {}) {
      const size = state.tile.size;
      if (x < 0 || y < 0 || x > size || y > size) return;
      const mark = {x: Math.round(x * 10) / 10, y: Math.round(y * 10) / 10};
      mark.marker = L.circleMarker(toLatLng(mark.x, mark.y), {radius: 10, color: "#000", weight: 2, fillColor: "#ffd400",
                                                              fillOpacity: 0.85, bubblingMouseEvents: false, className: "mark"})
        .on("click", () => removeMark(mark)).addTo(map);
      state.marks.push(mark);
      if (!quiet) {
        const damage = answers.find((a) => a.damage);
        if (damage && !(answerOf(chosen()) || {}).damage) setAnswer(damage.key);
      }
      countMarks(quiet);
    }

    function removeMark(mark) {
      mark.marker.remove();
      state.marks = state.marks.filter((m) => m !== mark);
      countMarks(false);
    }

    function clearMarks() {
      for (const mark of state.marks) mark.marker.remove();
      state.marks = [];
      countMarks(true);
    }

    function countMarks(quiet) {
      const text = interpolate(ngettext("%s point", "%s points", state.marks.length), [state.marks.length]);
      $("mark-count").textContent = text;
      if (!quiet) say(message, text);
    }

    map.on("click", (e) => { if (state.tile) addMark(e.latlng.lng, -e.latlng.lat); });
    $("gold-map").addEventListener("keydown", (e) => {
      if (e.key === "m" || e.key === "M") { e.preventDefault(); $("mark-centre").click(); }
    });
    $("mark-centre").addEventListener("click", () => {
      if (!state.tile) return;
      const centre = map.getCenter();
      addMark(centre.lng, -centre.lat);
    });
    $("undo-mark").addEventListener("click", () => { if (state.marks.length) removeMark(state.marks[state.marks.length - 1]); });
    $("gold-date").addEventListener("change", showImage);
    $("tile-filter").addEventListener("change", () => { state.offset = 0; loadPage(); });
    $("prev-page").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadPage(); });
    $("next-page").addEventListener("click", () => { state.offset += PAGE; loadPage(); });

    $("gold-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const answer = chosen();
      if (!answer) { say(message, gettext("Choose the tile's answer first."), {error: true}); return; }
      try {
        await api(`/api/v1/tiles/${state.tile.id}/gold/`, {method: "PUT", body: {
          answer, marks: state.marks.map((m) => [m.x, m.y])}});
        say(message, interpolate(gettext("Saved: tile %(col)s, %(row)s is a gold tile."),
                                 {col: state.tile.col, row: state.tile.row}, true));
        $("remove-gold").hidden = false;
        markThumb("gold");
      } catch (error) {
        say(message, error.message, {error: true});
      }
    });

    $("remove-gold").addEventListener("click", async () => {
      try {
        const result = await api(`/api/v1/tiles/${state.tile.id}/gold/`, {method: "DELETE"});
        clearMarks();
        setAnswer(null);
        $("remove-gold").hidden = true;
        say(message, gettext("The tile is an ordinary tile again."));
        markThumb(result.status);
      } catch (error) {
        say(message, error.message, {error: true});
      }
    });

    function markThumb(status) {
      state.tile.status = status;
      const button = grid.querySelector(`.thumb[data-tile="${state.tile.id}"]`);
      if (button) button.replaceWith(thumb(state.tile));
    }

    loadPage();
  }

  // --- Members --------------------------------------------------------------------------------------------------
  function membersPage(root) {
    const slug = root.dataset.slug;
    const me = root.dataset.me;
    const message = $("members-message");
    const PAGE = 50;
    let offset = 0;
    const url = `/api/v1/projects/${slug}/members/`;

    async function load() {
      const role = $("role-filter").value;
      const q = $("member-search").value.trim();
      const query = new URLSearchParams({limit: PAGE, offset});
      if (role) query.set("role", role);
      if (q) query.set("q", q);
      try {
        const page = await api(`${url}?${query}`);
        $("members").replaceChildren(...page.results.map(row));
        if (!page.results.length) $("members").replaceChildren(el("tr", {}, el("td", {colspan: "5", text: gettext("Nobody here.")})));
        const last = Math.min(offset + PAGE, page.count);
        $("members-info").textContent = page.count
          ? interpolate(gettext("%(first)s–%(last)s of %(count)s members"),
                        {first: number(offset + 1), last: number(last), count: number(page.count)}, true) : "";
        $("members-prev").disabled = offset === 0;
        $("members-next").disabled = last >= page.count;
      } catch (error) {
        say(message, error.message, {error: true});
      }
    }

    function roleSelect(member) {
      const select = el("select", {"aria-label": interpolate(gettext("Role of %s"), [member.username])},
        ...Object.entries(ROLES).map(([value, label]) => el("option", {value, text: label, selected: value === member.role})));
      select.addEventListener("change", () => setRole(member.username, select.value, select, member.role));
      return select;
    }

    function row(member) {
      return el("tr", {},
        el("th", {scope: "row", text: member.username + (member.username === me ? ` (${gettext("you")})` : "")}),
        el("td", {}, roleSelect(member)),
        el("td", {text: formatDate(member.joined_at.slice(0, 10))}),
        el("td", {text: member.tutorial_done ? gettext("yes") : gettext("no")}),
        el("td", {}, el("button", {type: "button", class: "secondary",
                                   "aria-label": interpolate(gettext("Remove %s from the project"), [member.username]),
                                   text: gettext("Remove"), onclick: () => remove(member.username)})));
    }

    async function setRole(username, role, select, before) {
      try {
        const member = await api(url, {method: "POST", body: {username, role}});
        say(message, interpolate(gettext("%(user)s is now %(role)s."), {user: member.username, role: ROLES[member.role]}, true));
        return true;
      } catch (error) {
        if (select) select.value = before;
        say(message, error.message, {error: true});
        return false;
      }
    }

    async function remove(username) {
      if (!window.confirm(interpolate(gettext("Remove %s from the project? Their votes stay."), [username]))) return;
      try {
        await api(`${url}?${new URLSearchParams({username})}`, {method: "DELETE"});
        say(message, interpolate(gettext("%s is no longer a member."), [username]));
        load();
      } catch (error) {
        say(message, error.message, {error: true});
      }
    }

    $("add-member").addEventListener("submit", async (event) => {
      event.preventDefault();
      const form = event.target;
      if (await setRole(form.elements.username.value.trim(), form.elements.role.value, null, null)) {
        form.reset();
        load();
      }
    });
    $("filter-members").addEventListener("submit", (event) => { event.preventDefault(); offset = 0; load(); });
    $("role-filter").addEventListener("change", () => { offset = 0; load(); });
    $("members-prev").addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
    $("members-next").addEventListener("click", () => { offset += PAGE; load(); });
    load();
  }

  const pages = [["project-form", projectForm], ["upload-form", uploadPage], ["gold", goldPage], ["members-page", membersPage]];
  for (const [id, init] of pages) { const root = $(id); if (root) init(root); }
})();
