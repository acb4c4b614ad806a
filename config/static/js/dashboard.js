// The coordinators' dashboard: figures from GET /api/v1/projects/<slug>/dashboard/, drawn as cards,
// progress bars, inline SVG bar charts (each with its figures in a table too) and tables.
// Managers open, pause and finish the project (POST .../status/). Layers being cut into tiles are
// polled (GET /api/v1/layers/<id>/) until they are ready or failed. Needs manage.js (window.manage).
(() => {
  "use strict";
  const {api, el, number, percent, formatDate, say, statusLabel} = window.manage;
  const root = document.getElementById("dashboard");
  const slug = root.dataset.slug;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const polling = new Set();

  function svg(tag, attributes = {}, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A round step for the value axis of counts (1, 2, 5, 10, 20, 25, 50 ...), about `ticks` of them to the top.
  function axis(max, ticks) {
    const raw = Math.max(1, max / ticks);
    const power = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw && Number.isInteger(s)) || 10 * power;
    return {step, top: Math.max(step, Math.ceil(max / step) * step)};
  }

  // A bar chart of items [{label, value, title}], with an accessible summary and a table of the figures.
  function barChart(items, {summary, labelHeader, valueHeader, colour = "#0b5cad"}) {
    const W = 640, H = 220, left = 48, right = 8, top = 10, bottom = 30;
    const {step, top: top_} = axis(Math.max(0, ...items.map((i) => i.value)), 4);
    const plotW = W - left - right, plotH = H - top - bottom;
    const chart = svg("svg", {viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": summary, class: "bars"});
    for (let value = 0; value <= top_; value += step) {
      const y = top + plotH - (plotH * value) / top_;
      chart.append(svg("line", {x1: left, x2: W - right, y1: y, y2: y, class: value ? "grid" : "axis"}));
      chart.append(svg("text", {x: left - 6, y: y + 4, "text-anchor": "end", class: "tick"}, number(value)));
    }
    const slot = plotW / Math.max(1, items.length);
    const gap = Math.min(2, slot * 0.2);
    const every = items.length <= 12 ? 1 : Math.ceil(items.length / 8);
    items.forEach((item, i) => {
      const h = top_ ? (plotH * item.value) / top_ : 0;
      const x = left + i * slot;
      const bar = svg("rect", {x: x + gap / 2, y: top + plotH - h, width: Math.max(1, slot - gap), height: h,
                               fill: colour, class: "bar"});
      bar.append(svg("title", {}, item.title || `${item.label}: ${number(item.value)}`));
      chart.append(bar);
      if (i % every === 0) {
        chart.append(svg("text", {x: x + slot / 2, y: H - 10, "text-anchor": "middle", class: "tick"}, item.label));
      }
    });
    const table = el("table", {class: "data"},
      el("thead", {}, el("tr", {}, el("th", {scope: "col", text: labelHeader}), el("th", {scope: "col", text: valueHeader}))),
      el("tbody", {}, ...items.map((item) => el("tr", {}, el("td", {text: item.label}), el("td", {text: number(item.value)})))));
    const details = el("details", {}, el("summary", {text: gettext("Show the figures")}), el("div", {class: "table-wrap", tabindex: "0", role: "region", "aria-label": summary}, table));
    // Time runs left to right in both directions of text, as on most charts.
    return el("div", {class: "chart-body"}, el("div", {dir: "ltr"}, chart), el("p", {class: "hint", text: summary}), details);
  }

  function card(title, value, detail) {
    return el("div", {class: "stat"}, el("h3", {text: title}), el("p", {class: "value", text: value}),
              el("p", {class: "detail", text: detail}));
  }

  function showStatus(status, allowed) {
    $("status").textContent = statusLabel(status);
    $("status").className = `pill status-${status}`;
    for (const button of root.querySelectorAll("[data-status]")) button.hidden = !allowed.includes(button.dataset.status);
    const open = root.querySelector("[data-status=active]");
    if (open) open.textContent = status === "draft" ? gettext("Open for tagging") : gettext("Reopen for tagging");
  }

  function figures(d) {
    const t = d.tiles, v = d.votes, left = d.left;
    let daysDetail;
    if (left.votes_needed === 0) daysDetail = gettext("Every open tile has its votes.");
    else if (left.days_left === null) daysDetail = interpolate(gettext("Nobody has voted in the last %s days."), [v.pace_days]);
    else daysDetail = interpolate(gettext("around %s, at the pace of the last days"), [formatDate(left.finish_date)]);
    $("figures").replaceChildren(
      card(gettext("Tiles"), number(t.total), interpolate(gettext("%(open)s open · %(retired)s finished · %(gold)s gold"),
                                                          {open: number(t.open), retired: number(t.retired), gold: number(t.gold)}, true)),
      card(gettext("Votes"), number(v.total), interpolate(gettext("%(counted)s counted · %(volunteers)s volunteers"),
                                                          {counted: number(v.counted), volunteers: number(v.volunteers)}, true)),
      card(gettext("Votes still needed"), number(left.votes_needed),
           interpolate(gettext("%(pace)s a day over the last %(days)s days"), {pace: number(v.pace_per_day), days: v.pace_days}, true)),
      card(gettext("Days left"), left.days_left === null ? "–" : number(left.days_left), daysDetail));
    const tagged = t.total - t.gold;
    const done = tagged ? t.retired / tagged : 0;
    $("tiles-done").value = Math.round(done * 100);
    $("tiles-done-text").textContent = interpolate(gettext("%(done)s of %(total)s (%(percent)s)"),
                                                   {done: number(t.retired), total: number(tagged), percent: percent(done)}, true);
    const wanted = (t.open + t.retired) * d.redundancy;
    const cast = Math.max(0, wanted - left.votes_needed);
    $("votes-done").value = wanted ? Math.round((cast / wanted) * 100) : 0;
    $("votes-done-text").textContent = interpolate(gettext("%(done)s of %(total)s (%(percent)s)"),
                                                   {done: number(cast), total: number(wanted), percent: percent(wanted ? cast / wanted : 0)}, true);
  }

  function charts(d) {
    const days = d.per_day;
    const day = (iso) => formatDate(iso, {month: "short", day: "numeric"});
    const busiest = days.reduce((best, x) => (x.votes > best.votes ? x : best), days[0]);
    const votes = days.reduce((sum, x) => sum + x.votes, 0);
    $("votes-chart").replaceChildren(barChart(
      days.map((x) => ({label: day(x.date), value: x.votes,
                        title: interpolate(ngettext("%(date)s: %(n)s vote", "%(date)s: %(n)s votes", x.votes), {date: day(x.date), n: number(x.votes)}, true)})),
      {summary: votes ? interpolate(gettext("%(votes)s votes in the last %(days)s days; the busiest day was %(date)s with %(most)s."),
                                    {votes: number(votes), days: days.length, date: day(busiest.date), most: number(busiest.votes)}, true)
                      : interpolate(gettext("No votes in the last %s days."), [days.length]),
       labelHeader: gettext("Day"), valueHeader: gettext("Votes")}));
    const most = days.reduce((best, x) => (x.volunteers > best.volunteers ? x : best), days[0]);
    $("volunteers-chart").replaceChildren(barChart(
      days.map((x) => ({label: day(x.date), value: x.volunteers,
                        title: interpolate(ngettext("%(date)s: %(n)s volunteer", "%(date)s: %(n)s volunteers", x.volunteers), {date: day(x.date), n: number(x.volunteers)}, true)})),
      {summary: most.volunteers ? interpolate(gettext("At most %(most)s volunteers in one day (%(date)s) over the last %(days)s days."),
                                              {most: number(most.volunteers), date: day(most.date), days: days.length}, true)
                                : interpolate(gettext("No volunteers in the last %s days."), [days.length]),
       labelHeader: gettext("Day"), valueHeader: gettext("Volunteers"), colour: "#1a7f37"}));
    const bins = d.agreement.bins;
    const tiles = bins.reduce((sum, b) => sum + b.tiles, 0);
    const high = bins.filter((b) => b.low >= 0.8).reduce((sum, b) => sum + b.tiles, 0);
    const range = (b) => `${Math.round(b.low * 100)}–${Math.round(b.high * 100)}%`;
    $("agreement-chart").replaceChildren(barChart(
      bins.map((b) => ({label: range(b), value: b.tiles,
                        title: interpolate(ngettext("%(range)s: %(n)s tile", "%(range)s: %(n)s tiles", b.tiles), {range: range(b), n: number(b.tiles)}, true)})),
      {summary: tiles ? interpolate(gettext("%(tiles)s tiles with a consensus; %(high)s of them with an agreement of %(percent)s or more."),
                                    {tiles: number(tiles), high: number(high), percent: percent(0.8)}, true)
                      : gettext("No tile has a consensus yet."),
       labelHeader: gettext("Agreement"), valueHeader: gettext("Tiles"), colour: "#8250df"}));
  }

  function reliabilityRows(rows) {
    if (!rows.length) return [el("tr", {}, el("td", {colspan: "5", text: gettext("No estimate yet: it comes with the next consensus run.")}))];
    return rows.map((r) => el("tr", {},
      el("th", {scope: "row", text: r.volunteer}), el("td", {text: percent(r.reliability)}), el("td", {text: percent(r.accuracy)}),
      el("td", {text: number(r.n_votes)}),
      el("td", {text: r.n_gold ? interpolate(gettext("%(right)s of %(tiles)s"), {right: number(r.n_gold_correct), tiles: number(r.n_gold)}, true) : "–"})));
  }

  function tilingCell(layer) {
    const bar = el("progress", {max: "100", value: String(Math.round(layer.progress * 100)),
                                "aria-label": interpolate(gettext("Tiling of %s"), [formatDate(layer.date)])});
    const text = layer.status === "failed" ? `${statusLabel(layer.status)}: ${layer.error}`
      : `${percent(layer.progress)} · ${statusLabel(layer.status)}`;
    return el("td", {class: `tiling ${layer.status}`}, bar, " ", el("span", {text}));
  }

  function layers(list) {
    const body = $("layers");
    if (!list.length) { body.replaceChildren(el("tr", {}, el("td", {colspan: "7", text: gettext("No imagery yet.")}))); return; }
    body.replaceChildren(...list.map((layer) => el("tr", {"data-layer": String(layer.id)},
      el("th", {scope: "row", text: formatDate(layer.date)}), el("td", {text: layer.source || "–"}), tilingCell(layer),
      el("td", {text: number(layer.tiles.tiles)}), el("td", {text: number(layer.tiles.open)}),
      el("td", {text: number(layer.tiles.retired)}), el("td", {text: number(layer.tiles.gold)}))));
    for (const layer of list) if (!["ready", "failed"].includes(layer.status)) pollLayer(layer.id);
  }

  async function pollLayer(id) {
    if (polling.has(id)) return;
    polling.add(id);
    try {
      for (;;) {
        await new Promise((resolve) => setTimeout(resolve, 2000));
        const layer = await api(`/api/v1/layers/${id}/`);
        const row = root.querySelector(`tr[data-layer="${id}"]`);
        if (row) row.children[2].replaceWith(tilingCell(layer));
        if (["ready", "failed"].includes(layer.status)) break;
      }
    } catch (error) {
      say($("message"), error.message, {error: true});
    } finally {
      polling.delete(id);
    }
    load();  // the new tiles change every figure
  }

  async function consensusRun() {
    try {
      const summary = await api(`/api/v1/projects/${slug}/consensus/`);
      $("consensus-run").textContent = summary.run && summary.run.finished_at
        ? interpolate(gettext("From the consensus computed on %s."), [new Date(summary.run.finished_at).toLocaleString(document.documentElement.lang || undefined)])
        : gettext("The consensus has not been computed yet.");
    } catch (error) {
      $("consensus-run").textContent = "";
    }
  }

  async function load() {
    try {
      const d = await api(`/api/v1/projects/${slug}/dashboard/`);
      showStatus(d.status, d.allowed_status);
      figures(d);
      charts(d);
      $("top").replaceChildren(...reliabilityRows(d.reliability.top));
      $("bottom").replaceChildren(...(d.reliability.volunteers > d.reliability.top.length || !d.reliability.top.length
        ? reliabilityRows(d.reliability.bottom) : reliabilityRows([])));
      layers(d.layers);
      root.dataset.loaded = "1";
    } catch (error) {
      say($("message"), error.message, {error: true});
    }
  }

  const CONFIRM = {finished: gettext("Finish the project? Volunteers will no longer get its tiles."),
                   draft: gettext("Take the project back to draft? Volunteers will no longer see it open.")};
  for (const button of root.querySelectorAll("[data-status]")) {
    button.addEventListener("click", async () => {
      const wanted = button.dataset.status;
      if (CONFIRM[wanted] && !window.confirm(CONFIRM[wanted])) return;
      try {
        const result = await api(`/api/v1/projects/${slug}/status/`, {method: "POST", body: {status: wanted}});
        showStatus(result.status, result.allowed);
        say($("message"), interpolate(gettext("The project is now: %s."), [statusLabel(result.status)]));
        const next = root.querySelector("[data-status]:not([hidden])");
        if (next) next.focus();
      } catch (error) {
        say($("message"), error.message, {error: true});
      }
    });
  }

  const recompute = $("recompute");
  if (recompute) recompute.addEventListener("click", async () => {
    recompute.disabled = true;
    try {
      await api(`/api/v1/projects/${slug}/consensus/recompute/`, {method: "POST"});
      say($("message"), gettext("The consensus is being recomputed. Reload this page in a minute to see it."));
    } catch (error) {
      say($("message"), error.message, {error: true});
    } finally {
      recompute.disabled = false;
    }
  });

  load();
  consensusRun();
})();
