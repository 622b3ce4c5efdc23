// The playground: reads the model's metadata from /model, builds one input per field of its
// schema (a slider and a number for numbers, a select for categories, a checkbox for booleans, a
// "missing" box where the model takes null), then asks /predict (?explain=true when the model
// explains itself) on every change. The API key lives in this script's memory only (no storage,
// no cookie).
"use strict";

const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 60;
let apiKey = "";
let model = null; // {fields, classes, version, task, explains}
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

function numberInputs(field) {
  const { name } = field;
  const known = field.min !== null && field.max !== null;
  const [low, high] = known ? [field.min, field.max] : [0, 10];
  const step = field.type === "integer" ? 1 : stepFor(low, high);
  const start =
    field.type === "integer" ? String(Math.round(low + (high - low) / 2)) : (low + (high - low) / 2).toFixed(decimals(step));
  const number = el("input", { type: "number", id: "number-" + name, step: field.type === "integer" ? 1 : "any", value: start });
  number.setAttribute("aria-label", name);
  const parts = [number];
  if (known) {
    const slider = el("input", { type: "range", id: "slider-" + name, min: low, max: high, step, value: start });
    slider.setAttribute("aria-label", name + " slider");
    slider.addEventListener("input", () => {
      number.value = slider.value;
      schedule();
    });
    number.addEventListener("input", () => {
      if (number.value !== "") slider.value = number.value; // the slider clamps to its range
      schedule();
    });
    parts.push(slider, el("span", { className: "range", textContent: "training range " + shown(low) + " to " + shown(high) }));
  } else {
    number.addEventListener("input", schedule);
    parts.push(el("span", { className: "range", textContent: field.known === false ? "type guessed (no sample)" : "" }));
  }
  return parts;
}

function textInputs(field) {
  const { name } = field;
  let input;
  if (field.categories && field.categories.length) {
    input = el(
      "select",
      { id: "text-" + name },
      field.categories.map((c) => el("option", { value: String(c), textContent: String(c) })),
    );
    input.addEventListener("change", schedule);
  } else {
    input = el("input", { type: "text", id: "text-" + name, value: "" });
    input.addEventListener("input", schedule);
  }
  input.setAttribute("aria-label", name);
  const hint = field.categories ? field.categories.length + " categories seen in training" : "any text";
  return [input, el("span", { className: "range", textContent: hint })];
}

function booleanInputs(field) {
  const box = el("input", { type: "checkbox", id: "bool-" + field.name });
  box.setAttribute("aria-label", field.name);
  box.addEventListener("change", schedule);
  return [box, el("span", { className: "range", textContent: "checked is true" })];
}

function buildInputs() {
  const form = $("features");
  form.replaceChildren();
  for (const field of model.fields) {
    const { name } = field;
    let parts;
    if (field.type === "text") parts = textInputs(field);
    else if (field.type === "boolean") parts = booleanInputs(field);
    else parts = numberInputs(field);
    const [input, ...rest] = parts;
    const children = [el("label", { htmlFor: input.id, textContent: name }), input, ...rest];
    if (field.nullable) {
      const missing = el("input", { type: "checkbox", id: "null-" + name });
      missing.addEventListener("change", () => {
        input.disabled = missing.checked;
        schedule();
      });
      children.push(el("label", { className: "missing", htmlFor: missing.id }, [missing, " missing (null)"]));
    }
    const row = el("div", { className: "feature", id: "feature-" + name }, children);
    row.dataset.feature = name;
    row.dataset.type = field.type;
    form.append(row);
  }
}

function readRow() {
  const row = {};
  for (const field of model.fields) {
    const { name } = field;
    const missing = $("null-" + name);
    if (missing && missing.checked) {
      row[name] = null;
    } else if (field.type === "text") {
      row[name] = $("text-" + name).value;
    } else if (field.type === "boolean") {
      row[name] = $("bool-" + name).checked;
    } else {
      const text = $("number-" + name).value.trim();
      const value = Number(text);
      if (text === "" || !Number.isFinite(value)) return { missing: name };
      row[name] = value;
    }
  }
  return { row };
}

// The fields of /model's schema; a server without one shows feature_names and feature_ranges.
function modelFields(body) {
  if (body.schema && Array.isArray(body.schema.fields)) return body.schema.fields;
  const ranges = body.feature_ranges || {};
  return body.feature_names.map((name) => {
    const [min, max] = ranges[name] || [null, null];
    return { name, type: "number", nullable: false, min, max, categories: null, known: true };
  });
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

function warningText(w) {
  if (w.range) return `${w.field} = ${w.value} is outside the training range ${w.range[0]} to ${w.range[1]}`;
  return `${w.field} = ${JSON.stringify(w.value)} is not a category seen in training`;
}

function renderWarnings(warnings) {
  const box = $("warnings");
  const outside = new Set((warnings || []).map((w) => w.field));
  for (const field of model.fields) $("feature-" + field.name).classList.toggle("outside", outside.has(field.name));
  if (!warnings || !warnings.length) {
    box.hidden = true;
    box.replaceChildren();
    return;
  }
  const items = warnings.map((w) => el("li", { textContent: warningText(w) }));
  box.replaceChildren(
    el("strong", { textContent: "Outside what the model saw in training: treat this answer with care." }),
    el("ul", {}, items),
  );
  box.hidden = false;
}

// A tree's explanation is its decision path (text steps); a tree ensemble's is each feature's
// contribution, which the server spells out in text too when it can.
function renderPath(explanation) {
  let steps = explanation && Array.isArray(explanation.text) ? explanation.text : [];
  if (!steps.length && explanation && explanation.contributions) {
    steps = Object.entries(explanation.contributions)
      .sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]))
      .map(([name, value]) => `${name}: ${value >= 0 ? "+" : ""}${Number(value).toPrecision(3)}`);
  }
  $("path").replaceChildren(
    ...steps.map((text, i) => el("li", { textContent: text, className: i === steps.length - 1 ? "leaf" : "" })),
  );
}

function render(body) {
  const regressor = "Prediction" in body;
  $("predicted-label").textContent = regressor ? "Predicted value: " : "Predicted class: ";
  $("predicted-class").textContent = regressor ? String(Number(body.Prediction.toPrecision(6))) : String(body.Class);
  if (body.Probabilities) renderBars(body.Probabilities, String(body.Class));
  else $("probabilities").replaceChildren();
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
    showStatus("Enter a number for " + missing + " (or tick missing, where the model takes null).");
    return;
  }
  const mine = ++latest;
  try {
    const { res, body } = await getJson(model.explains ? "/predict?explain=true" : "/predict", {
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
      fields: modelFields(body),
      classes: (body.classes || []).map(String),
      version: body.version,
      task: body.task || "classification",
      // A tree or a tree ensemble explains its answers; another model answers explain=true with a 400.
      explains: (body.predictor || "tree") !== "general",
    };
    $("path-title").hidden = !model.explains;
    $("path-title").textContent = (body.predictor || "tree") === "tree" ? "Why: the decision path" : "Why: each feature's share";
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
