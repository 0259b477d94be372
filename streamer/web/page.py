"""The index page: every stream with its status, counters and live video. Plain HTML + a little JS."""

INDEX_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>streamer - live view</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 16px; background: #111; color: #ddd; }
 h1 { font-size: 18px; }
 .grid { display: flex; flex-wrap: wrap; gap: 16px; }
 .stream { background: #1c1c1c; padding: 8px; border-radius: 6px; width: 480px; }
 .stream img { width: 100%; background: #000; min-height: 120px; }
 .state-decoding { color: #6c6; } .state-connecting, .state-failed { color: #e66; } .state-ended { color: #aaa; }
 table { border-collapse: collapse; width: 100%; } td { padding: 1px 6px; } td.n { text-align: right; }
 .err { color: #e99; font-size: 12px; word-break: break-all; }
</style></head>
<body><h1>streamer - live view</h1><div class="grid" id="grid"></div>
<script>
const token = new URLSearchParams(location.search).get("token");
const q = token ? "?token=" + encodeURIComponent(token) : "";
function cell(k, v) { return `<tr><td>${k}</td><td class="n">${v}</td></tr>`; }
async function refresh() {
  const grid = document.getElementById("grid");
  let streams;
  try { streams = await (await fetch("/api/streams" + q)).json(); } catch (e) { return; }
  for (const s of streams) {
    let card = document.getElementById("s-" + s.name);
    if (!card) {
      card = document.createElement("div");
      card.className = "stream"; card.id = "s-" + s.name;
      card.innerHTML = `<h2></h2><img alt=""><table></table><div class="err"></div>`;
      card.querySelector("h2").textContent = s.name;
      card.querySelector("img").src = "/streams/" + encodeURIComponent(s.name) + ".mjpg" + q;
      card.querySelector("img").alt = "live video of " + s.name;
      grid.appendChild(card);
    }
    const h = card.querySelector("h2");
    h.innerHTML = ""; h.appendChild(document.createTextNode(s.name + " "));
    const state = document.createElement("span");
    state.className = "state-" + s.state; state.textContent = s.state; h.appendChild(state);
    card.querySelector("table").innerHTML =
      cell("fps in / out", s.fps_in.toFixed(1) + " / " + s.fps_out.toFixed(1)) +
      cell("latency", s.latency_ms.toFixed(0) + " ms") +
      cell("frames", `<span class="frames-out">${s.frames_out}</span>`) +
      cell("drops", s.dropped) + cell("reconnects", s.reconnects) + cell("stalls", s.stalls) +
      cell("decode errors", s.decode_errors);
      cell("skipped (damage)", s.skipped_damaged);
    card.querySelector(".err").textContent = s.last_error || "";
  }
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"""
