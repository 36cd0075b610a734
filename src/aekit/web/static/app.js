// The aekit page: plain DOM code against the REST API under /api/ (no framework, no build).
"use strict";

const PAGE = 24; // gallery thumbnails per page
const $ = (id) => document.getElementById(id);

const state = {
  blob: null, // the query image as sent to reconstruct and denoise
  index: null, // the query's gallery index, or null for an upload
  galleryOffset: 0,
  gallerySize: 0,
  searchSeq: 0, // answers to superseded requests are dropped
  denoiseSeq: 0,
  interpolateSeq: 0,
  anomalySeq: 0,
  anomaly: false, // the run scores images as normal or anomalous
  decodable: false, // the run's codes decode on their own: offer interpolation
  fullSize: false, // the run denoises photos at their own size: show the before/after panel
  map: null, // the gallery's Map view, made when first shown
  nearest: [], // the query's nearest gallery items, marked on the map
};

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function api(path, options) {
  const r = await fetch(path, options);
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    throw new Error(`${r.status}: ${detail || r.statusText}`);
  }
  return body;
}

function form(fields) {
  const f = new FormData();
  for (const [key, value] of Object.entries(fields)) {
    if (value instanceof Blob) f.append(key, value, "query.png");
    else f.append(key, String(value));
  }
  return f;
}

// labels and class names are data: set as text, never as HTML
function div(text, className = "") {
  const d = document.createElement("div");
  d.textContent = text;
  d.className = className;
  return d;
}

function img(src) {
  const i = document.createElement("img");
  i.alt = "";
  i.src = src;
  return i;
}

const db = (value) => `PSNR ${value.toFixed(2)} dB`;

// --- choosing a query ---

async function chooseUpload(file) {
  state.blob = file;
  state.index = null;
  $("query-caption").textContent = `upload ${file.name}`;
  await runQuery();
}

async function chooseIndex(index) {
  const r = await fetch(`/api/gallery/${index}/image`);
  if (!r.ok) return setStatus(`gallery item ${index}: ${r.status}`, true);
  state.blob = await r.blob();
  state.index = index;
  $("query-caption").textContent = `gallery #${index}`;
  await runQuery();
}

async function runQuery() {
  setStatus("Working…");
  $("views").hidden = false;
  try {
    await Promise.all([reconstruct(), denoise(), search(), anomaly()]);
    setStatus("");
  } catch (err) {
    setStatus(err.message, true);
  }
}

// --- reconstruction and denoising ---

async function reconstruct() {
  const body = await api("/api/reconstruct", { method: "POST", body: form({ image: state.blob }) });
  $("img-original").src = body.original;
  $("img-reconstruction").src = body.reconstruction;
  $("psnr-reconstruction").textContent = db(body.psnr);
}

async function denoise() {
  const seq = ++state.denoiseSeq;
  const fields = { image: state.blob, noise: $("noise-kind").value, level: $("noise-level").value };
  const body = await api("/api/denoise", { method: "POST", body: form(fields) });
  if (seq !== state.denoiseSeq) return;
  $("img-noisy").src = body.noisy;
  $("img-denoised").src = body.denoised;
  // no PSNR when the upload itself is the noisy photo: its clean version is unknown
  const known = body.psnr_noisy !== null;
  $("psnr-noisy").textContent = known ? db(body.psnr_noisy) : "";
  $("psnr-denoised").textContent = known ? db(body.psnr_denoised) : "";
  if (state.fullSize) showCompare(body, known);
}

// --- anomaly score and heatmap ---

async function anomaly() {
  if (!state.anomaly) return;
  const seq = ++state.anomalySeq;
  const query = state.index === null ? { image: state.blob } : { index: state.index };
  const fields = { ...query, method: $("anomaly-method").value };
  const body = await api("/api/anomaly", { method: "POST", body: form(fields) });
  if (seq !== state.anomalySeq) return;
  $("anomaly-panel").hidden = false;
  $("anomaly-verdict").textContent = body.verdict;
  $("anomaly-verdict").className = `verdict ${body.verdict}`;
  $("anomaly-score").textContent = `score ${body.score.toPrecision(4)} · threshold `
    + `${body.threshold.toPrecision(4)} (${(body.fpr * 100).toFixed(1)}% of held-out normal `
    + `images above it) · ${body.method}`;
  $("anomaly-normal").textContent = body.normal_classes
    ? `(classes ${body.normal_classes.join(", ")})` : "";
  $("anomaly-original").src = body.original;
  $("anomaly-reconstruction").src = body.reconstruction;
  $("anomaly-heatmap").src = body.heatmap;
  $("anomaly-map").textContent = body.map;
  $("anomaly-mask-figure").hidden = !body.mask; // a gallery item with a defect mask
  if (body.mask) $("anomaly-mask").src = body.mask;
}

// --- before/after at full size ---

function showCompare(body, known) {
  $("compare-panel").hidden = false;
  $("cmp-before").src = body.noisy;
  $("cmp-after").src = body.denoised;
  $("compare").style.aspectRatio = `${body.width} / ${body.height}`;
  $("compare-size").textContent = `${body.width}×${body.height}`;
  $("compare-psnr").textContent = known
    ? `Noisy ${db(body.psnr_noisy)} → denoised ${db(body.psnr_denoised)}.`
    : "The upload was taken as the noisy photo (no clean version: no PSNR).";
  $("download").href = body.denoised;
  moveCompare();
}

function moveCompare() {
  const x = Number($("cmp-slider").value);
  $("cmp-before").style.clipPath = `inset(0 ${100 - x}% 0 0)`;
  $("cmp-line").style.left = `${x}%`;
}
$("cmp-slider").addEventListener("input", moveCompare);

// --- search ---

async function search() {
  if (state.gallerySize === 0) return; // no gallery served: nothing to search
  const seq = ++state.searchSeq;
  const k = Math.max(1, Math.min(Number($("k").value) || 7, state.gallerySize - 1));
  const query = state.index === null ? { image: state.blob } : { index: state.index };
  const ask = (farthest) => api("/api/search", {
    method: "POST", body: form({ ...query, k, farthest, metric: $("metric").value }),
  });
  const [near, far] = await Promise.all([ask(false), ask(true)]);
  if (seq !== state.searchSeq) return;
  $("neighbours").hidden = false;
  showResults($("nearest"), near.results);
  showResults($("farthest"), far.results);
  state.nearest = near.results.map((r) => r.index);
  markMap();
}

function showResults(list, results) {
  list.replaceChildren(...results.map((r) => {
    const li = document.createElement("li");
    li.dataset.testid = "result";
    li.dataset.index = r.index;
    li.title = `gallery #${r.index}: click to search from it`;
    const name = r.class ? `${r.class} (${r.label})` : `label ${r.label}`;
    li.append(img(r.image_url), div(`#${r.index} · ${name}`),
      div(`d = ${r.distance.toPrecision(3)}`, "dist"));
    li.addEventListener("click", () => chooseIndex(r.index));
    if (state.decodable) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "↔";
      b.title = `interpolate from the query to gallery #${r.index}`;
      b.dataset.testid = "interpolate-button";
      b.addEventListener("click", (e) => {
        e.stopPropagation(); // not a new search
        interpolateTo(r.index).catch((err) => setStatus(err.message, true));
      });
      li.append(b);
    }
    return li;
  }));
}

// --- interpolation and generation ---

function strip(list, urls, captions) {
  list.replaceChildren(...urls.map((url, i) => {
    const li = document.createElement("li");
    li.dataset.testid = "strip-image";
    li.append(img(url), div(captions[i], "dist"));
    return li;
  }));
}

async function interpolateTo(index) {
  const seq = ++state.interpolateSeq;
  const from = state.index === null ? { image: state.blob } : { index: state.index };
  const body = await api("/api/interpolate", {
    method: "POST", body: form({ ...from, to: index, steps: 8 }),
  });
  if (seq !== state.interpolateSeq) return;
  $("interpolation-panel").hidden = false;
  $("interpolation-caption").textContent = `${$("query-caption").textContent} → gallery #${index}`;
  const last = body.images.length - 1;
  strip($("interpolation"), [body.from, ...body.images, body.to],
    ["query", ...body.images.map((_, i) => (i / last).toFixed(2)), `#${index}`]);
}

async function generateSamples() {
  const fields = { n: 8, seed: $("gen-seed").value || 0, temperature: $("gen-temperature").value };
  const body = await api("/api/generate", { method: "POST", body: form(fields) });
  strip($("samples"), body.images, body.images.map((_, i) => `sample ${i + 1}`));
}

// --- gallery browser ---

async function showGallery(offset) {
  const page = await api(`/api/gallery?offset=${offset}&limit=${PAGE}`);
  state.galleryOffset = offset;
  $("gallery").replaceChildren(...page.items.map((it) => {
    const li = document.createElement("li");
    li.dataset.testid = "thumb";
    li.dataset.index = it.index;
    li.title = `gallery #${it.index}`;
    li.append(img(it.image_url), div(`#${it.index} · ${it.class ?? it.label}`));
    li.addEventListener("click", () => chooseIndex(it.index));
    return li;
  }));
  const last = Math.min(offset + PAGE, page.total);
  $("gallery-page").textContent = `${offset + 1}–${last} of ${page.total}`;
  $("gallery-prev").disabled = offset === 0;
  $("gallery-next").disabled = last >= page.total;
}

// --- the gallery's Map view (map.js) ---

function markMap() {
  if (state.map) state.map.mark(state.index, state.nearest);
}

async function showMap() {
  for (const [tab, on] of [["show-grid", false], ["show-map", true]]) {
    $(tab).setAttribute("aria-selected", String(on));
  }
  $("grid-view").hidden = true;
  $("map-view").hidden = false;
  if (state.map) return state.map.draw();
  const data = await api("/api/map");
  const how = data.source === "saved"
    ? `${data.method.toUpperCase()} map saved by aekit map`
    : "PCA computed by the page (aekit map EMB --method umap saves a map that shows "
      + "clusters better)";
  const shown = data.shown < data.count
    ? `${data.shown.toLocaleString()} of ${data.count.toLocaleString()} items (a sample)`
    : `${data.count.toLocaleString()} items`;
  $("map-caption").textContent = `${shown}, ${how}.`;
  state.map = new MapView($("map"), $("map-tip"), $("map-legend"), data, chooseIndex);
  window.aekitMap = state.map; // for scripts and the browser test: screenOf(index)
  state.map.fit();
  markMap();
}

function showGrid() {
  for (const [tab, on] of [["show-grid", true], ["show-map", false]]) {
    $(tab).setAttribute("aria-selected", String(on));
  }
  $("map-view").hidden = true;
  $("grid-view").hidden = false;
}

// --- wiring ---

async function start() {
  const info = await api("/api/info");
  state.gallerySize = info.gallery_size;
  state.decodable = info.decodable && info.gallery_size > 0;
  state.fullSize = info.full_size;
  state.anomaly = info.anomaly;
  const methods = $("anomaly-method"); // the run's methods, its default first
  methods.replaceChildren(...[info.anomaly_method,
    ...info.anomaly_methods.filter((m) => m !== info.anomaly_method)].map((m) => {
    const option = document.createElement("option");
    option.value = option.textContent = m;
    return option;
  }));
  $("generate-panel").hidden = !info.generative;
  const m = info.config.model;
  $("info").textContent = `${info.run} · ${m.arch}, ${info.input}, latent ${m.latent_dim}`
    + ` · gallery ${info.gallery_size} · ${info.device}`;
  if (info.gallery_size > 0) await showGallery(0);
  else $("gallery-panel").hidden = true;
}

$("file-input").addEventListener("change", (e) => {
  if (e.target.files.length) chooseUpload(e.target.files[0]);
});

const zone = $("dropzone");
zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (e) => {
  e.preventDefault();
  zone.classList.remove("over");
  if (e.dataTransfer.files.length) chooseUpload(e.dataTransfer.files[0]);
});

// gaussian: sigma in pixel units (0-255 scale); salt & pepper and mask: a fraction of pixels
const LEVELS = {
  gaussian: { min: 0, max: 100, step: 1, value: 25, digits: 0 },
  poisson: { min: 1, max: 1000, step: 1, value: 30, digits: 0 }, // photons of a white pixel
  saltpepper: { min: 0, max: 1, step: 0.05, value: 0.2, digits: 2 },
  mask: { min: 0, max: 1, step: 0.05, value: 0.2, digits: 2 },
  none: { min: 0, max: 0, step: 1, value: 0, digits: 0 }, // the upload is the noisy photo
};
const showLevel = () => {
  const digits = LEVELS[$("noise-kind").value].digits;
  $("noise-value").textContent = Number($("noise-level").value).toFixed(digits);
};
$("noise-level").addEventListener("input", showLevel);
const redenoise = () => state.blob && denoise().catch((err) => setStatus(err.message, true));
$("noise-level").addEventListener("change", redenoise);
$("noise-kind").addEventListener("change", () => {
  const level = LEVELS[$("noise-kind").value];
  Object.assign($("noise-level"), { min: level.min, max: level.max, step: level.step });
  $("noise-level").value = level.value;
  $("noise-level").disabled = $("noise-kind").value === "none";
  showLevel();
  redenoise();
});
const research = () => state.blob && search().catch((err) => setStatus(err.message, true));
$("k").addEventListener("change", research);
$("anomaly-method").addEventListener("change",
  () => state.blob && anomaly().catch((err) => setStatus(err.message, true)));
$("metric").addEventListener("change", research);

$("generate").addEventListener("click", () => generateSamples()
  .catch((err) => setStatus(err.message, true)));
$("gen-temperature").addEventListener("input", () => {
  $("gen-temperature-value").textContent = Number($("gen-temperature").value).toFixed(1);
});

$("show-map").addEventListener("click", () => showMap().catch((err) => {
  $("map-caption").textContent = `No map: ${err.message}`;
  setStatus(err.message, true);
}));
$("show-grid").addEventListener("click", showGrid);
$("map-fit").addEventListener("click", () => state.map && state.map.fit());
$("gallery-prev").addEventListener("click", () => showGallery(Math.max(0, state.galleryOffset - PAGE)));
$("gallery-next").addEventListener("click", () => showGallery(state.galleryOffset + PAGE));

start().catch((err) => setStatus(err.message, true));
