// The playground: reads the model's metadata from /model, then asks /predict?explain=true on
// every change. The API key lives in this script's memory only (no storage, no cookie).
"use strict";

const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 60;
let apiKey = "";
let model = null; // {features, ranges, classes, version}
let latest = 0; // number of the newest request: older answers are dropped
let timer = null;

function headers(json) {
  const h = { Accept: "application/json" };
  if (json) h["Content-Type"] = "application/json";
  if (apiKey) h.Authorization = "Bearer " + apiKey;
  return h;
}

function el(tag, props, children) {
  const node = Object.assign(document.createElement(tag), props || {});
  for (const child of children || []) node.append(child);
  return node;
}

function problemText(body, status) {
  if (!body || typeof body !== "object") return "HTTP " + status;
  const details = (body.errors || []).map((e) => [e.field, e.problem].filter(Boolean).join(": "));
  return [body.message || body.error || "HTTP " + status, ...details].join(" · ");
}

function showStatus(text) {
  $("status").textContent = text || "";
}

async function getJson(path, options) {
  const res = await fetch(path, options);
  let body = null;
  try {
    body = await res.json();
  } catch (_) {
    body = null;
  }
  return { res, body };
}

function stepFor(low, high) {
  const span = high - low;
  return span > 0 ? Math.pow(10, Math.round(Math.log10(span / 50))) : 0.1;
}

function decimals(step) {
  return Math.max(0, -Math.floor(Math.log10(step)));
}

// A training bound as a person reads it: the shortest decimal that is the same float32 (the
// precision the tree compares at), as the server's Warnings show it (modeler/ranges.py shown()).
function shown(bound) {
  for (let digits = 1; digits <= 9; digits++) {
    const candidate = Number(bound.toPrecision(digits));
    if (Math.fround(candidate) === Math.fround(bound)) return candidate;
  }
  return bound;
}

function buildInputs() {
  const form = $("features");
  form.replaceChildren();
  for (const name of model.features) {
    const [low, high] = model.ranges[name] || [0, 10];
    const step = stepFor(low, high);
    const start = (low + (high - low) / 2).toFixed(decimals(step));
    const slider = el("input", { type: "range", id: "slider-" + name, min: low, max: high, step, value: start });
    const number = el("input", { type: "number", id: "number-" + name, step: "any", value: start });
    slider.setAttribute("aria-label", name + " slider");
    number.setAttribute("aria-label", name);
    slider.addEventListener("input", () => {
      number.value = slider.value;
      schedule();
    });
    number.addEventListener("input", () => {
      if (number.value !== "") slider.value = number.value; // the slider clamps to its range
      schedule();
    });
    const row = el("div", { className: "feature", id: "feature-" + name }, [
      el("label", { htmlFor: "number-" + name, textContent: name }),
      number,
      slider,
      el("span", { className: "range", textContent: "training range " + shown(low) + " to " + shown(high) }),
    ]);
    row.dataset.feature = name;
    form.append(row);
  }
}

function readRow() {
  const row = {};
  for (const name of model.features) {
    const text = $("number-" + name).value.trim();
    const value = Number(text);
    if (text === "" || !Number.isFinite(value)) return { missing: name };
    row[name] = value;
  }
  return { row };
}

function renderBars(probabilities, predicted) {
  const box = $("probabilities");
  box.replaceChildren();
  for (const name of model.classes) {
    const p = probabilities[name] || 0;
    const fill = el("div", { className: "fill" });
    fill.style.width = (p * 100).toFixed(1) + "%";
    const bar = el("div", { className: "bar" + (name === predicted ? " top" : "") }, [
      el("span", { textContent: name }),
      el("div", { className: "track" }, [fill]),
      el("span", { className: "value", textContent: (p * 100).toFixed(0) + " %" }),
    ]);
    bar.dataset.class = name;
    bar.dataset.probability = String(p);
    box.append(bar);
  }
}

function renderWarnings(warnings) {
  const box = $("warnings");
  const outside = new Set((warnings || []).map((w) => w.field));
  for (const name of model.features) $("feature-" + name).classList.toggle("outside", outside.has(name));
  if (!warnings || !warnings.length) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const items = warnings.map((w) =>
    el("li", { textContent: `${w.field} = ${w.value} is outside the training range ${w.range[0]} to ${w.range[1]}` }),
  );
  box.replaceChildren(
    el("strong", { textContent: "Outside what the model saw in training: treat this answer with care." }),
    el("ul", {}, items),
  );
  box.hidden = false;
}

function renderPath(explanation) {
  const steps = explanation ? explanation.text : [];
  $("path").replaceChildren(
    ...steps.map((text, i) => el("li", { textContent: text, className: i === steps.length - 1 ? "leaf" : "" })),
  );
}

function render(body) {
  $("predicted-class").textContent = body.Class;
  renderBars(body.Probabilities, body.Class);
  renderWarnings(body.Warnings);
  renderPath(body.Explanation);
  $("model-line").textContent = "Model version " + body.ModelVersion;
  showStatus("");
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(predict, DEBOUNCE_MS);
}

async function predict() {
  if (!model) return loadModel();
  const { row, missing } = readRow();
  if (missing) {
    showStatus("Enter a number for " + missing + ".");
    return;
  }
  const mine = ++latest;
  try {
    const { res, body } = await getJson("/predict?explain=true", {
      method: "POST",
      headers: headers(true),
      body: JSON.stringify(row),
    });
    if (mine !== latest) return; // a newer request is on its way
    if (res.ok) render(body);
    else showStatus(authHint(res.status) || problemText(body, res.status));
  } catch (err) {
    if (mine === latest) showStatus("The server did not answer: " + err.message);
  }
}

function authHint(status) {
  if (status !== 401 && status !== 403) return "";
  $("auth").open = true;
  return apiKey ? "The server refused this API key." : "This server needs an API key: enter it below the measurements.";
}

async function loadModel() {
  try {
    const { res, body } = await getJson("/model", { headers: headers(false) });
    if (!res.ok) {
      const text = authHint(res.status) || problemText(body, res.status);
      $("model-line").textContent = "The model is not available yet.";
      showStatus(text);
      return;
    }
    model = {
      features: body.feature_names,
      ranges: body.feature_ranges || {},
      classes: body.classes,
      version: body.version,
    };
    $("model-line").textContent = "Model version " + model.version;
    buildInputs();
    predict();
  } catch (err) {
    showStatus("The server did not answer: " + err.message);
  }
}

$("api-key").addEventListener("input", (event) => {
  apiKey = event.target.value.trim();
  schedule();
});

loadModel();
