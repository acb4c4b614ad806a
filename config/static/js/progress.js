// "How am I doing?": the volunteer's own figures, from GET /api/v1/projects/<slug>/me/.
(() => {
  "use strict";
  const box = document.getElementById("progress");
  const pct = (rate) => (rate === null ? "–" : `${Math.round(rate * 100)}%`);
  const number = (n) => n.toLocaleString(document.documentElement.lang);

  function card(title, value, detail) {
    const div = document.createElement("div");
    div.className = "stat";
    const h = document.createElement("h2"); h.textContent = title;
    const v = document.createElement("p"); v.className = "value"; v.textContent = value;
    const d = document.createElement("p"); d.className = "detail"; d.textContent = detail;
    div.append(h, v, d);
    return div;
  }

  fetch(box.dataset.url, {credentials: "same-origin"}).then((r) => r.json()).then((me) => {
    const p = me.project;
    const done = p.votes_needed ? p.votes / p.votes_needed : 0;
    box.replaceChildren(
      card(gettext("Tiles today"), number(me.tiles_today),
           interpolate(gettext("%s in total"), [number(me.tiles_total)])),
      card(gettext("Agreement with the crowd"), pct(me.agreement.rate),
           me.agreement.tiles_compared
             ? interpolate(gettext("on %s tiles that others have also tagged"), [number(me.agreement.tiles_compared)])
             : gettext("shown once others have tagged your tiles")),
      card(gettext("Score on known tiles"), pct(me.gold.rate),
           me.gold.tiles
             ? interpolate(gettext("%(correct)s right out of %(tiles)s"), me.gold, true)
             : gettext("no known tiles yet")),
      card(gettext("Project progress"), pct(Math.min(1, done)),
           interpolate(gettext("%(retired)s of %(tiles)s tiles finished"),
                       {retired: number(p.tiles_retired), tiles: number(p.tiles)}, true)),
    );
    if (me.too_fast) {
      const note = document.createElement("p");
      note.className = "note";
      note.textContent = interpolate(gettext("%s of your answers came too fast to count. Take your time: every building matters."), [me.too_fast]);
      box.append(note);
    }
  }).catch(() => { box.textContent = gettext("Your figures could not be loaded. Try again later."); });
})();
