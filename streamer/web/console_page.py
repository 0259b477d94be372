"""The operator console page: review, face library, search, audit, with every stream's health on top. Plain
HTML + JS over /api/console (web/console.py).

Everything from the server (names, cameras, errors) goes in with textContent, never as HTML. Changes send the
CSRF token written into this page (``@CSRF@``) as a header, and the operator's name (kept in the browser) for
the audit log. A reconstruction is always shown beside the face the camera saw, marked SYNTHETIC.
"""

CONSOLE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>streamer - console</title>
<meta name="csrf" content="@CSRF@"><meta name="changes" content="@CHANGES@">
<style>
 body { font: 14px system-ui, sans-serif; margin: 0; background: #111; color: #ddd; }
 header { display: flex; gap: 16px; align-items: center; padding: 8px 16px; background: #1b1b1b; }
 header h1 { font-size: 17px; margin: 0; } nav a { color: #9cf; margin-right: 12px; text-decoration: none; }
 nav a.on { color: #fff; font-weight: bold; border-bottom: 2px solid #9cf; }
 #health { display: flex; flex-wrap: wrap; gap: 6px; padding: 6px 16px; background: #161616; }
 .chip { padding: 2px 8px; border-radius: 10px; background: #243; font-size: 12px; }
 .chip.bad { background: #7a1f1f; color: #fff; font-weight: bold; } .chip.warn { background: #6a5316; }
 #stale { display: none; background: #b22; color: #fff; padding: 4px 16px; font-weight: bold; }
 body.stale #stale { display: block; }
 main { padding: 12px 16px; } section { display: none; } section.on { display: block; }
 .filters, .row { display: flex; flex-wrap: wrap; gap: 8px; align-items: center; margin-bottom: 10px; }
 input, select, button { font: inherit; background: #222; color: #ddd; border: 1px solid #444; border-radius: 4px;
   padding: 3px 6px; } button { cursor: pointer; } button.danger { border-color: #a33; color: #f88; }
 .cards { display: flex; flex-wrap: wrap; gap: 10px; }
 .card { background: #1c1c1c; border-radius: 6px; padding: 8px; width: 330px; }
 .card.rejected { border-left: 3px solid #a33; }
 .faces { display: flex; gap: 6px; } .faces figure { margin: 0; position: relative; }
 .faces img { width: 112px; height: 112px; background: #000; display: block; }
 .synthetic { position: absolute; top: 2px; left: 2px; background: #c0f; color: #fff; font-size: 10px;
   font-weight: bold; padding: 1px 4px; } figcaption { font-size: 11px; color: #aaa; }
 .who { font-weight: bold; margin: 4px 0; } .pseudo { color: #db6; } .nobody { color: #aaa; }
 .meta { color: #aaa; font-size: 12px; } .scores { font-size: 12px; }
 .msg { font-size: 13px; margin: 2px 0; } .msg.bad { color: #f77; } .msg.ok { color: #7c7; }
 .thumbs img { width: 56px; height: 56px; margin-right: 3px; }
 table { border-collapse: collapse; } td, th { padding: 2px 8px; text-align: left; border-bottom: 1px solid #333; }
</style></head>
<body>
<header><h1>streamer - console</h1>
<nav><a href="#" id="nav-live">Live view</a><a href="#review" data-view="review">Review</a>
<a href="#library" data-view="library">Face library</a><a href="#search" data-view="search">Search</a>
<a href="#audit" data-view="audit">Audit log</a></nav>
<label>operator <input id="operator" size="12" placeholder="your name"></label></header>
<div id="health" aria-label="stream health"></div>
<div id="stale" role="alert"></div>
<div id="readonly" class="msg bad" style="display:none; padding: 4px 16px">read-only: this server has no web.token,
 so nobody can be named, rejected, enrolled or removed from here (search still works)</div>
<main>
<section id="review">
 <div class="filters">
  <select id="f-stream"><option value="">every camera</option></select>
  <input id="f-person" placeholder="person" size="12">
  <label><input type="checkbox" id="f-unknown"> unknown only</label>
  <select id="f-occluded"><option value="">occluded or not</option><option value="1">occluded</option>
   <option value="0">clear</option></select>
  <label>from <input type="datetime-local" id="f-after"></label><label>to <input type="datetime-local" id="f-before">
  </label><button id="f-apply">Show</button>
 </div>
 <div id="review-msg" class="msg"></div>
 <div class="cards" id="review-list"></div>
 <button id="review-more" style="display:none">Older</button>
</section>
<section id="library">
 <div class="row"><input id="enrol-name" placeholder="person's name" size="16">
  <input type="file" id="enrol-files" accept="image/jpeg,image/png" multiple>
  <button id="enrol">Enrol photos</button></div>
 <div id="enrol-msgs"></div>
 <h3>People</h3><div class="cards" id="people"></div>
 <h3>Unknown faces that look alike</h3><div class="cards" id="groups"></div>
 <h3>Unknown faces</h3><div class="cards" id="unknowns"></div>
</section>
<section id="search">
 <div class="row"><input type="file" id="search-file" accept="image/jpeg,image/png">
  <button id="search-go">Search by photo</button></div>
 <p class="meta">A search names nobody: it lists the most similar sightings, across every camera and time.</p>
 <div id="search-msg" class="msg"></div>
 <div class="cards" id="search-list"></div>
</section>
<section id="audit"><label><input type="checkbox" id="audit-all"> the runs' own changes too (unknown faces
 made and followed, retention)</label>
<table><thead><tr><th>when</th><th>who</th><th>what</th><th>whom</th><th>detail</th></tr>
 </thead><tbody id="audit-rows"></tbody></table></section>
</main>
<script>
"use strict";
const CSRF = document.querySelector('meta[name="csrf"]').content;
if (document.querySelector('meta[name="changes"]').content !== "1") {
  document.getElementById("readonly").style.display = "";
}
const token = new URLSearchParams(location.search).get("token");
const API = "/api/console/";
let people = [];
let nextPage = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = text;
  return e;
}
function url(path, params) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== "" && v !== null && v !== undefined) u.searchParams.set(k, v);
  }
  if (token) u.searchParams.set("token", token);
  return u.pathname + u.search;
}
function seg(name) { return encodeURIComponent(name); }
async function api(method, path, body, headers) {
  const h = Object.assign({"X-Streamer-CSRF": CSRF, "X-Operator": encodeURIComponent(operator())}, headers || {});
  if (body !== undefined && !(body instanceof Blob)) {
    h["Content-Type"] = "application/json";
    body = JSON.stringify(body);
  }
  const r = await fetch(url(API + path), {method, headers: h, body, credentials: "same-origin"});
  let data = null;
  try { data = await r.json(); } catch (e) { data = {error: r.status + " " + r.statusText}; }
  if (!r.ok) throw new Error(data && data.error ? data.error : r.status + " " + r.statusText);
  return data;
}
function operator() { return document.getElementById("operator").value.trim(); }
function when(epoch) { return new Date(epoch * 1000).toLocaleString(); }
function score(v) { return v === null || v === undefined ? "-" : v.toFixed(3); }
function say(id, text, ok) {
  const m = document.getElementById(id);
  m.textContent = text;
  m.className = "msg " + (ok ? "ok" : "bad");
}

// --- stream health, on every view ---------------------------------------------------------
let healthOk = Date.now();
async function health() {
  try {
    const r = await fetch(url("/api/streams"));
    if (!r.ok) throw new Error(r.status);
    const streams = await r.json();
    const bar = document.getElementById("health");
    bar.replaceChildren();
    if (!streams.length) bar.append(el("span", "chip warn", "no stream running"));
    for (const s of streams) {
      const age = s.last_frame_age_s;
      const silent = s.live && s.state === "decoding" && age !== null && age > 10;
      const dead = s.state === "down" || s.state === "failed" || silent;
      const text = s.name + ": " + s.state +
        (age === null ? ", no frame yet" : ", last frame " + Math.round(age) + " s ago") +
        (s.reconnects ? ", " + s.reconnects + " reconnects" : "");
      const chip = el("span", "chip" + (dead ? " bad" : s.state === "connecting" ? " warn" : ""), text);
      chip.dataset.stream = s.name; chip.dataset.state = s.state;
      bar.append(chip);
    }
    healthOk = Date.now();
    document.body.classList.remove("stale");
  } catch (e) {
    if (Date.now() - healthOk > 5000) {
      document.body.classList.add("stale");
      document.getElementById("stale").textContent = "stream health not updating: the server does not answer";
    }
  }
}

// --- review -------------------------------------------------------------------------------
function picture(src, caption, synthetic) {
  const f = el("figure");
  const i = el("img"); i.src = src; i.alt = caption; i.loading = "lazy";
  f.append(i);
  if (synthetic) f.append(el("span", "synthetic", "SYNTHETIC"));
  f.append(el("figcaption", null, caption));
  return f;
}
function sightingCard(s, hitScore, said) {
  const c = el("div", "card" + (s.rejected ? " rejected" : ""));
  c.dataset.sighting = s.id;
  c.dataset.time = s.time;
  if (hitScore !== undefined) c.dataset.similarity = hitScore;
  const faces = el("div", "faces");
  faces.append(picture(url(API + "sightings/" + s.id + "/face.jpg"), "as the camera saw it", false));
  if (s.reconstructed) faces.append(picture(url(API + "sightings/" + s.id + "/synthetic.jpg"), "reconstruction", true));
  c.append(faces);
  const who = s.identity === null ? el("div", "who nobody", "nobody named") :
    el("div", "who" + (s.kind === "pseudo" ? " pseudo" : ""), s.identity);
  who.classList.add("identity");
  c.append(who);
  if (hitScore !== undefined) c.append(el("div", "scores", "similarity " + score(Number(hitScore))));
  if (s.rejected) c.append(el("div", "meta", "not " + s.rejected + " (operator)"));
  c.append(el("div", "meta", when(s.time) + " - " + s.stream + " - track " + s.track +
    (s.occluded ? " - occluded: " + (s.occluders.join(", ") || "yes") : "")));
  if (s.run_named && s.run_named !== s.identity) c.append(el("div", "meta", "the run named it " + s.run_named));
  if (s.run_named && s.score === null)
    c.append(el("div", "scores", "a new unknown face: nobody in the library scored " + score(s.threshold)));
  else if (s.run_named)
    c.append(el("div", "scores", "score " + score(s.score) + " (threshold " + score(s.threshold) + "), decided on " +
      (s.matched_on || "-") + "; seen " + score(s.score_visible) + ", reconstruction " + score(s.score_reconstructed)));
  const row = el("div", "row");
  const name = el("input"); name.placeholder = "name"; name.size = 10; name.setAttribute("list", "known-people");
  name.className = "assign-name";
  const msg = el("div", said ? said.className : "msg", said ? said.textContent : undefined);
  const run = (fn) => async () => {
    try { await fn(); } catch (e) { msg.textContent = e.message; msg.className = "msg bad"; }
  };
  const isBtn = el("button", "assign", "This is"); isBtn.onclick = run(async () => {
    const r = await api("POST", "sightings/" + s.id + "/assign", {name: name.value.trim()});
    msg.textContent = r.outcome === "kept" ? "already " + r.name : "named " + r.name + " (" + r.outcome + ")";
    msg.className = "msg ok";
    await refreshCard(c, s.id); loadPeople();
  });
  const newBtn = el("button", "new-person", "New person"); newBtn.onclick = run(async () => {
    const n = name.value.trim();
    if (people.some(p => p.name === n)) throw new Error(n + " is already in the library: use 'This is'");
    const r = await api("POST", "sightings/" + s.id + "/assign", {name: n});
    msg.textContent = "new person " + r.name; msg.className = "msg ok"; await refreshCard(c, s.id); loadPeople();
  });
  row.append(name, isBtn, newBtn);
  if (s.identity !== null) {
    const notBtn = el("button", "reject danger", "Not " + s.identity); notBtn.onclick = run(async () => {
      const r = await api("POST", "sightings/" + s.id + "/reject");
      msg.textContent = "not " + r.not + ": kept as a negative"; msg.className = "msg ok"; await refreshCard(c, s.id);
    });
    row.append(notBtn);
  }
  const similar = el("button", "similar", "Similar"); similar.onclick = run(async () => {
    show("search"); await searchBy(() => api("GET", "search?sighting=" + s.id));
  });
  row.append(similar);
  c.append(row, msg);
  return c;
}
async function refreshCard(card, id) {
  const s = await api("GET", "sightings/" + id);
  card.replaceWith(sightingCard(s, card.dataset.similarity, card.querySelector(".row + .msg")));
}
function filters() {
  const t = (id) => { const v = document.getElementById(id).value; return v ? new Date(v).getTime() / 1000 : ""; };
  const v = (id) => document.getElementById(id).value.trim();
  const unknown = document.getElementById("f-unknown").checked ? "1" : "";
  return {stream: v("f-stream"), person: v("f-person"), unknown, occluded: v("f-occluded"), after: t("f-after"),
          before: t("f-before")};
}
let applied = {};    // the filters of the list shown (what Show applied, not what is typed since)
let generation = 0;  // counts the lists shown: a poll answered after a new list was asked for is dropped
async function loadReview(more) {
  const list = document.getElementById("review-list");
  if (!more) { applied = filters(); generation += 1; }
  try {
    const params = Object.assign({}, applied, more ? {older_than: nextPage} : {});
    const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "")).toString();
    const page = await api("GET", "sightings" + (q ? "?" + q : ""));
    if (!more) list.replaceChildren();
    for (const s of page.items) list.append(sightingCard(s));
    nextPage = page.next;
    document.getElementById("review-more").style.display = nextPage ? "" : "none";
    say("review-msg", list.children.length ? "" : "no face sighting matches", true);
  } catch (e) { say("review-msg", e.message, false); }
}
// New face sightings come in while the operator looks at the newest (the list has no "to" time), each at its
// place by (time, id): a sighting committed late by another machine is not lost. The page keeps 500 at most.
const KEPT = 500;
async function newSightings() {
  const list = document.getElementById("review-list");
  if (!document.getElementById("review").classList.contains("on") || applied.before) return;
  const asked = generation;
  try {
    const q = new URLSearchParams(Object.entries(applied).filter(([, v]) => v !== "")).toString();
    const page = await api("GET", "sightings" + (q ? "?" + q : ""));
    if (asked !== generation) return;  // the list was asked for again meanwhile, perhaps with other filters
    const shown = new Set(Array.from(list.children, c => c.dataset.sighting));
    const later = (a, b) => a.time > b.time || (a.time === b.time && a.id > b.id);
    for (const s of page.items.filter(s => !shown.has(String(s.id))).reverse()) {
      const card = sightingCard(s);
      const place = (c) => ({time: Number(c.dataset.time), id: Number(c.dataset.sighting)});
      const before = Array.from(list.children).find(c => later(s, place(c)));
      if (before) list.insertBefore(card, before);
      else if (!nextPage) list.append(card);  // older than every card, and the list has no more: it belongs last
    }
    while (list.children.length > KEPT) list.lastChild.remove();
    if (list.children.length) say("review-msg", "", true);
  } catch (e) { /* the health bar says when the server is away */ }
}

async function loadStreams() {
  try {
    const sel = document.getElementById("f-stream"), chosen = sel.value;
    const names = await api("GET", "streams");
    sel.replaceChildren(el("option", null, "every camera"));
    sel.firstChild.value = "";
    for (const n of names) { const o = el("option", null, n); o.value = n; sel.append(o); }
    sel.value = chosen;
  } catch (e) { /* the health bar says when the server is away */ }
}

// --- library ------------------------------------------------------------------------------
function identityCard(p) {
  const c = el("div", "card identity-card");
  c.dataset.name = p.name;
  c.append(el("div", "who" + (p.kind === "pseudo" ? " pseudo" : ""), p.name));
  c.append(el("div", "meta", p.faces + " faces" + (p.rejected ? ", " + p.rejected + " rejected" : "") + ", " +
    p.tracks + " tracks, last seen " + (p.last_seen ? when(p.last_seen) : "never")));
  const thumbs = el("div", "thumbs");
  for (const f of p.face_ids) {
    const i = el("img");
    i.src = url(API + "faces/" + f + ".jpg");
    i.alt = p.name;
    thumbs.append(i);
  }
  c.append(thumbs);
  const row = el("div", "row"), msg = el("div", "msg");
  const name = el("input"); name.placeholder = p.kind === "pseudo" ? "name this face" : "new name or merge into";
  name.size = 14; name.className = "rename-name"; name.setAttribute("list", "known-people");
  const rename = el("button", "rename", p.kind === "pseudo" ? "Name" : "Rename / merge");
  rename.onclick = async () => {
    try {
      const r = await api("POST", "identities/" + seg(p.name) + "/rename", {name: name.value.trim()});
      msg.textContent = p.name + " " + r.outcome + " " + r.new_name; msg.className = "msg ok"; loadPeople();
    } catch (e) { msg.textContent = e.message; msg.className = "msg bad"; }
  };
  const remove = el("button", "remove danger", "Remove");
  remove.onclick = async () => {
    if (remove.textContent === "Remove") {
      remove.textContent = "Erase " + p.name + " and all their sightings?";
      return;
    }
    try { await api("DELETE", "identities/" + seg(p.name)); loadPeople(); }
    catch (e) { msg.textContent = e.message; msg.className = "msg bad"; }
  };
  row.append(name, rename, remove);
  c.append(row, msg);
  return c;
}
function groupCard(g, threshold) {
  // Unknown faces that look alike (a face of one scores the naming threshold with a face of another): named in
  // one go, each renamed into the name given (the first makes the person, the rest merge into them).
  const c = el("div", "card group-card");
  c.dataset.members = g.members.join("\\n");
  c.append(el("div", "who pseudo", g.members.length > 1 ? g.members.length + " unknown faces that look alike"
                                                       : g.members[0]));
  c.append(el("div", "meta", g.members.join(", ")));
  const thumbs = el("div", "thumbs");
  for (const p of people.filter(p => g.members.includes(p.name))) {
    for (const f of p.face_ids.slice(0, 3)) {
      const i = el("img");
      i.src = url(API + "faces/" + f + ".jpg");
      i.alt = p.name;
      thumbs.append(i);
    }
  }
  c.append(thumbs);
  if (g.closest) c.append(el("div", "scores", "closest person: " + g.closest.name + " " + score(g.closest.score) +
                                           " (plain-cosine threshold " + score(threshold) + ")"));
  const row = el("div", "row"), msg = el("div", "msg");
  const name = el("input"); name.placeholder = "name them"; name.size = 14; name.className = "group-name";
  name.setAttribute("list", "known-people");
  if (g.closest && g.closest.score >= threshold) name.value = g.closest.name;
  const go = el("button", "name-group", g.members.length > 1 ? "Name all " + g.members.length : "Name");
  go.onclick = async () => {
    try {
      for (const member of g.members) {
        await api("POST", "identities/" + seg(member) + "/rename", {name: name.value.trim()});
      }
      msg.textContent = g.members.join(", ") + " named " + name.value.trim(); msg.className = "msg ok";
    } catch (e) { msg.textContent = e.message; msg.className = "msg bad"; }
    finally { loadPeople(); }  // the members named before a refusal are shown as they are now
  };
  row.append(name, go);
  c.append(row, msg);
  return c;
}
async function loadPeople() {
  try {
    const answer = await api("GET", "identities");
    people = answer.identities;
    const known = document.getElementById("known-people") || document.body.appendChild(el("datalist"));
    known.id = "known-people";
    const option = (p) => { const o = el("option"); o.value = p.name; return o; };
    known.replaceChildren(...people.filter(p => p.kind === "person").map(option));
    document.getElementById("people").replaceChildren(...people.filter(p => p.kind === "person").map(identityCard));
    const groups = answer.unknown_groups.map(g => groupCard(g, answer.threshold));
    document.getElementById("groups").replaceChildren(...groups);
    document.getElementById("unknowns").replaceChildren(...people.filter(p => p.kind === "pseudo").map(identityCard));
  } catch (e) { say("enrol-msgs", e.message, false); }
}
async function enrol() {
  const name = document.getElementById("enrol-name").value.trim();
  const files = Array.from(document.getElementById("enrol-files").files);
  const out = document.getElementById("enrol-msgs");
  out.replaceChildren();
  if (!files.length) { out.append(el("div", "msg bad", "choose one or more photos")); return; }
  for (const f of files) {
    try {
      const r = await api("POST", "identities/" + seg(name) + "/faces", f,
        {"Content-Type": f.type || "application/octet-stream", "X-Filename": encodeURIComponent(f.name)});
      out.append(el("div", "msg ok", r.message));
    } catch (e) {
      out.append(el("div", "msg bad", e.message.includes(f.name) ? e.message : f.name + ": " + e.message));
    }
  }
  loadPeople();
}

// --- search -------------------------------------------------------------------------------
async function searchBy(request) {
  const list = document.getElementById("search-list");
  list.replaceChildren();
  try {
    const r = await request();
    say("search-msg", r.hits.length + " most similar of " + r.searched + " face sightings", true);
    for (const h of r.hits) list.append(sightingCard(h, h.similarity));
  } catch (e) { say("search-msg", e.message, false); }
}

// --- audit --------------------------------------------------------------------------------
async function loadAudit() {
  try {
    const rows = await api("GET", "audit" + (document.getElementById("audit-all").checked ? "?all=1" : ""));
    document.getElementById("audit-rows").replaceChildren(...rows.map(r => {
      const tr = el("tr");
      for (const v of [when(r.time), r.actor, r.action, r.subject, JSON.stringify(r.detail)]) {
        tr.append(el("td", null, v));
      }
      return tr;
    }));
  } catch (e) { /* shown by the health bar */ }
}

function show(view) {
  for (const s of document.querySelectorAll("section")) s.classList.toggle("on", s.id === view);
  for (const a of document.querySelectorAll("nav a[data-view]")) a.classList.toggle("on", a.dataset.view === view);
  if (location.hash !== "#" + view) history.replaceState(null, "", location.pathname + location.search + "#" + view);
  if (view === "library") loadPeople();
  if (view === "audit") loadAudit();
}
for (const a of document.querySelectorAll("nav a[data-view]")) {
  a.onclick = (e) => { e.preventDefault(); show(a.dataset.view); };
}
document.getElementById("nav-live").href = url("/");
document.getElementById("f-apply").onclick = () => loadReview(false);
document.getElementById("review-more").onclick = () => loadReview(true);
document.getElementById("enrol").onclick = enrol;
document.getElementById("audit-all").onchange = loadAudit;
document.getElementById("search-go").onclick = () => {
  const f = document.getElementById("search-file").files[0];
  if (!f) { say("search-msg", "choose a photo", false); return; }
  searchBy(() => api("POST", "search", f, {"Content-Type": f.type || "application/octet-stream",
                                           "X-Filename": encodeURIComponent(f.name)}));
};
const op = document.getElementById("operator");
op.value = localStorage.getItem("streamer-operator") || "";
op.onchange = () => localStorage.setItem("streamer-operator", operator());
show((location.hash || "#review").slice(1) || "review");
health(); setInterval(health, 2000);
setInterval(newSightings, 5000);
loadStreams(); loadPeople(); loadReview(false);
</script></body></html>
"""
