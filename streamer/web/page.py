"""The index page: every stream with its status, counters and live video. Plain HTML + a little JS.

Everything from the server (stream names, errors, states) goes in with textContent, never as HTML. The
page says when it shows old numbers: a fetch that fails, or data older than 5 s, raises a "not updating"
warning and dims the cards, because frozen counters look exactly like a quiet, healthy camera.
"""

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>streamer - live view</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 16px; background: #111; color: #ddd; }
 h1 { font-size: 18px; margin-bottom: 4px; } h2 { font-size: 16px; margin: 2px 0 6px; }
 #updated { color: #999; margin-bottom: 12px; }
 #stale { display: none; background: #b22; color: #fff; font-weight: bold; padding: 6px 10px; border-radius: 4px;
          margin-bottom: 12px; }
 body.stale #stale { display: block; } body.stale .grid { opacity: 0.45; }
 .grid { display: flex; flex-wrap: wrap; gap: 16px; }
 .stream { background: #1c1c1c; padding: 8px; border-radius: 6px; width: 480px; border: 2px solid transparent; }
 .stream.state-down, .stream.state-failed { border-color: #c33; }
 .stream img { width: 100%; background: #000; min-height: 120px; }
 .state.state-decoding { color: #6c6; } .state.state-connecting { color: #db6; } .state.state-ended { color: #aaa; }
 .state.state-down, .state.state-failed { color: #f55; }
 .age { color: #bbb; margin: 2px 0; }
 table { border-collapse: collapse; width: 100%; } td { padding: 1px 6px; } td.n { text-align: right; }
 .err { color: #e99; font-size: 12px; word-break: break-all; }
</style></head>
<body><h1>streamer - live view
 <a id="to-console" href="/console" style="font-size:14px;color:#9cf">operator console</a></h1>
<div id="updated">waiting for the first update</div>
<div id="stale" role="alert"></div>
<div class="grid" id="grid"></div>
<script>
"use strict";
const STALE_S = 5;
const WORDS = {down: "down: reconnecting"};
const token = new URLSearchParams(location.search).get("token");
const q = token ? "?token=" + encodeURIComponent(token) : "";
document.getElementById("to-console").href = "/console" + q;
let lastOk = Date.now();  // browser clock (ms) of the last good answer; the page load counts as one
let dataAge = 0;          // s between the newest snapshot and the server's clock in that answer
let failure = "";         // why the last fetch failed; "" when it did not
let newest = 0;           // the newest snapshot's time (server clock, epoch s)

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function two(n) { return String(n).padStart(2, "0"); }
function clock(epoch) {
  const d = new Date(epoch * 1000);
  return two(d.getHours()) + ":" + two(d.getMinutes()) + ":" + two(d.getSeconds());
}
function frameAge(s) {
  return s.last_frame_age_s === null ? "no frame yet" : "last frame " + Math.round(s.last_frame_age_s) + " s ago";
}
function card(s) {
  let c = document.getElementById("s-" + s.name);
  if (c) return c;
  c = el("div", "stream");
  c.id = "s-" + s.name;
  const h = el("h2");
  h.append(el("span", "name", s.name), " ", el("span", "state"));
  const img = el("img");
  img.alt = "live video of " + s.name;
  c.append(h, img, el("div", "age"), el("table"), el("div", "err"));
  document.getElementById("grid").append(c);
  return c;
}
function table(s) {
  const t = el("table");
  const rows = [
    ["fps in / out", s.fps_in.toFixed(1) + " / " + s.fps_out.toFixed(1)], ["latency", s.latency_ms.toFixed(0) + " ms"],
    ["frames", s.frames_out], ["drops", s.dropped], ["reconnects", s.reconnects],
    ["connect failures", s.connect_failures], ["stalls", s.stalls], ["decode errors", s.decode_errors],
    ["skipped (damage)", s.skipped_damaged],
  ];
  for (const [label, value] of rows) {
    const tr = el("tr");
    tr.append(el("td", "", label), el("td", label === "frames" ? "n frames-out" : "n", String(value)));
    t.append(tr);
  }
  return t;
}
function show(s) {
  const c = card(s);
  if (c.dataset.state !== s.state) {
    // A new card, or the stream changed state: (re)open its video, so one that comes back shows it again
    // even if the browser had given up on the old connection.
    const again = c.dataset.state ? (q ? "&" : "?") + "t=" + Date.now() : "";
    c.querySelector("img").src = "/streams/" + encodeURIComponent(s.name) + ".mjpg" + q + again;
    c.dataset.state = s.state;
    c.className = "stream state-" + s.state;
  }
  const state = c.querySelector(".state");
  state.className = "state state-" + s.state;
  state.textContent = WORDS[s.state] || s.state;
  c.querySelector(".age").textContent = frameAge(s);
  c.querySelector("table").replaceWith(table(s));
  c.querySelector(".err").textContent = s.last_error || "";
}
function checkStale() {
  const since = (Date.now() - lastOk) / 1000;
  let why = "";
  if (failure) why = "the server does not answer (" + failure + ")";
  else if (since > STALE_S) why = "no answer for " + Math.round(since) + " s";
  else if (dataAge + since > STALE_S) why = "the newest status is " + Math.round(dataAge + since) + " s old";
  if (why && newest) why += "; the numbers below are from " + clock(newest);
  document.body.classList.toggle("stale", why !== "");
  document.getElementById("stale").textContent = why ? "not updating: " + why : "";
}
async function refresh() {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 4000);
  const wasFailing = failure !== "";
  try {
    const response = await fetch("/api/streams" + q, {signal: abort.signal, cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    const streams = await response.json();
    const serverNow = parseFloat(response.headers.get("X-Server-Time")) || Date.now() / 1000;
    newest = streams.reduce((m, s) => Math.max(m, s.updated), 0);
    lastOk = Date.now();
    failure = "";
    dataAge = newest ? Math.max(0, serverNow - newest) : 0;
    document.getElementById("updated").textContent = newest ? "updated " + clock(newest) : "no streams";
    if (wasFailing) for (const c of document.getElementById("grid").children) c.dataset.state = "reload";
    for (const s of streams) show(s);
  } catch (e) {
    failure = e.name === "AbortError" ? "no answer in 4 s" : String(e.message || e);
  } finally {
    clearTimeout(timer);
  }
  checkStale();
}
async function loop() { await refresh(); setTimeout(loop, 1000); }
loop(); setInterval(checkStale, 1000);
</script></body></html>
"""
