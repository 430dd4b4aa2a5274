// stackgan serve: the web page's script (plain JavaScript, no build step, no network beyond
// this server). It calls the JSON API (POST /v1/images, GET /v1/models) like any client.
// document.body.dataset.state tells scripts and tests where the page is:
// "loading" -> "ready" -> "generating" -> "done" | "error".
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "stackgan-api-key";
let models = new Map();
let limits = {};

function setState(state) {
  document.body.dataset.state = state;
}

function say(text, kind) {
  const s = $("status");
  s.textContent = text;
  s.className = kind || "";
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORE);
  return key ? { Authorization: "Bearer " + key } : {};
}

// fetch + JSON, never throws: {ok, status, body, retryAfter}
async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = Object.assign({ Accept: "application/json" }, authHeaders(), opts.headers || {});
  let response;
  try {
    response = await fetch(path, opts);
  } catch (err) {
    return { ok: false, status: 0, body: { error: "could not reach the server (" + err + ")" } };
  }
  let body;
  try {
    body = await response.json();
  } catch (err) {
    body = { error: response.status + " " + response.statusText };
  }
  return {
    ok: response.ok,
    status: response.status,
    body: body,
    retryAfter: response.headers.get("Retry-After"),
  };
}

// one clear line per failure: what went wrong and, when the server says, which field
function explain(res) {
  const b = res.body || {};
  if (res.status === 503) {
    const wait = res.retryAfter ? " Try again in " + res.retryAfter + " s." : " Try again soon.";
    return { text: "The server is busy: " + (b.error || "its queue is full") + "." + wait,
             kind: "busy" };
  }
  if (res.status === 401) {
    $("key-row").hidden = false;
    return { text: "This server needs an API key: enter it below and try again.", kind: "error" };
  }
  if (res.status === 0) return { text: "Network error: " + b.error + ".", kind: "error" };
  const field = b.field ? " [" + b.field + "]" : "";
  return { text: "Error " + res.status + field + ": " + (b.error || "request failed"),
           kind: "error" };
}

function currentModel() {
  return models.get($("model").value);
}

function showModel() {
  const m = currentModel();
  const box = $("examples");
  box.textContent = "";
  const conditional = !m || m.conditional;
  $("caption-block").hidden = !conditional;
  if (!m) return;
  for (const text of m.examples) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = text;
    b.addEventListener("click", () => { $("captions").value = text; });
    box.appendChild(b);
  }
}

async function loadModels() {
  const res = await api("/v1/models");
  if (!res.ok) {
    const e = explain(res);
    say(e.text, e.kind);
    return false;
  }
  limits = res.body.limits || {};
  models = new Map(res.body.models.map((m) => [m.name, m]));
  const select = $("model");
  select.textContent = "";
  for (const m of res.body.models) {
    const o = document.createElement("option");
    o.value = m.name;
    o.textContent = m.name + " (" + m.dataset + ", " + m.resolution + " px)";
    select.appendChild(o);
  }
  select.value = res.body.default;
  if (limits.max_images) $("num").max = limits.max_images;
  if (limits.max_seed) $("seed").max = limits.max_seed;
  showModel();
  return true;
}

function captionLines() {
  return $("captions").value.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);
}

function reproduceUrl(captions, seed, n, model) {
  const q = new URLSearchParams();
  for (const c of captions) q.append("caption", c);
  q.set("seed", String(seed));
  q.set("n", String(n));
  q.set("model", model);
  return location.pathname + "?" + q.toString();
}

function stageLabel(i, count, resolution) {
  const names = count === 2 ? ["Stage-I", "Stage-II"] : null;
  return (names ? names[i] : "Stage " + (i + 1)) + " (" + resolution + " px)";
}

async function render(body) {
  const results = $("results");
  results.textContent = "";
  const stages = body.stages || [{ stage: 1, resolution: body.resolution, images: body.images }];
  const groups = body.captions.length ? body.captions : [null];
  const pending = [];
  groups.forEach((caption, ci) => {
    const block = document.createElement("div");
    block.className = "caption-result";
    const h = document.createElement("h2");
    h.textContent = caption === null ? "Unconditional samples" : caption;
    block.appendChild(h);
    const row = document.createElement("div");
    row.className = "samples";
    for (let j = 0; j < body.num_images; j++) {
      const k = caption === null ? j : ci * body.num_images + j;
      const sample = document.createElement("div");
      sample.className = "sample";
      stages.forEach((st, si) => {
        const fig = document.createElement("figure");
        const img = document.createElement("img");
        img.className = "stage-img" + (st.resolution < body.resolution ? " upscaled" : "");
        img.dataset.stage = String(st.stage);
        img.alt = stageLabel(si, stages.length, st.resolution) + ", image " + (k + 1);
        img.src = st.images[k];
        pending.push(img.decode().catch(() => null));
        const cap = document.createElement("figcaption");
        cap.textContent = stageLabel(si, stages.length, st.resolution);
        fig.appendChild(img);
        fig.appendChild(cap);
        sample.appendChild(fig);
      });
      row.appendChild(sample);
    }
    block.appendChild(row);
    results.appendChild(block);
  });
  await Promise.all(pending);
}

async function generate() {
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem(KEY_STORE, key);
  if (models.size === 0 && !(await loadModels())) { // e.g. the API key was missing
    setState("error");
    return;
  }
  const m = currentModel();
  const captions = m && !m.conditional ? [] : captionLines();
  if (m && m.conditional && captions.length === 0) {
    say("Write a caption first (or pick an example).", "error");
    setState("error");
    return;
  }
  const seedText = $("seed").value.trim();
  const n = parseInt($("num").value || "1", 10);
  const request = {
    captions: captions,
    model: $("model").value || null,
    seed: seedText === "" ? null : Number(seedText),
    num_images: Number.isFinite(n) ? n : 1,
    stages: true,
    format: "png", // data URIs: each <img> shows its PNG as sent
  };
  $("generate").disabled = true;
  setState("generating");
  say("Generating…", "");
  const t0 = performance.now();
  const res = await api("/v1/images", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(request),
  });
  $("generate").disabled = false;
  if (!res.ok) {
    const e = explain(res);
    say(e.text, e.kind);
    setState("error");
    return;
  }
  const b = res.body;
  await render(b);
  const url = reproduceUrl(b.captions, b.seed, b.num_images, b.model);
  $("link").href = url;
  $("link").textContent = location.origin + url;
  $("used-seed").textContent = String(b.seed);
  $("link-row").hidden = false;
  history.replaceState(null, "", url); // reloading the page makes the same images again
  const secs = ((performance.now() - t0) / 1000).toFixed(2);
  say(b.images.length + " image(s) in " + secs + " s (seed " + b.seed + "; the server's batch: " +
      b.batch_images + " image(s) from " + b.batch_requests + " request(s)).", "");
  setState("done");
}

// ?caption=...&seed=...&n=...&model=... fills the form and generates (the reproduce link)
function fromQuery() {
  const q = new URLSearchParams(location.search);
  if (q.has("model") && models.has(q.get("model"))) {
    $("model").value = q.get("model");
    showModel();
  }
  const captions = q.getAll("caption");
  if (captions.length) $("captions").value = captions.join("\n");
  if (q.has("seed")) $("seed").value = q.get("seed");
  if (q.has("n")) $("num").value = q.get("n");
  const m = currentModel();
  return captions.length > 0 || (m && !m.conditional && q.has("seed"));
}

async function main() {
  setState("loading");
  $("form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    generate();
  });
  $("model").addEventListener("change", showModel);
  $("captions").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      generate();
    }
  });
  if (!(await loadModels())) {
    setState("error");
    return;
  }
  setState("ready");
  if (fromQuery()) await generate();
}

main();
