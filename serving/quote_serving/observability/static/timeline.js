// The token-timeline page. Data flow:
//   /v1/traces            → the recent-requests list (scoped to the caller's tenant by the API)
//   /v1/traces/{id}       → one request's tokens (sampled/forced/erased/stop), top-k, mod calls
//   /v1/chat/completions  → a prompt sent from the page, streamed (SSE) into the live box; when it
//                           ends, its trace is loaded and drawn
//   ?trace=ID&share=TOKEN → a shared link: only that trace, read with its token, nothing else
// Model output is always inserted as text (textContent), never as HTML. URLs are relative, so the
// page also works where the API is mounted under a prefix (KServe's /openai).
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const shareToken = params.get("share");
const state = { trace: null, pinned: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : String(child));
  return node;
}

function authHeaders(extra = {}) {
  const key = sessionStorage.getItem("quote.apiKey");
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers || {}) });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error((body.error && body.error.message) || `${response.status} ${response.statusText}`);
  return body;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

// ----- the recent-requests list ----------------------------------------------------------------
async function loadList() {
  const list = $("trace-list");
  try {
    const { data } = await api("v1/traces?limit=100");
    list.replaceChildren(...data.map(listItem));
    if (!data.length) list.append(el("li", { class: "muted" }, "No requests yet."));
  } catch (err) {
    list.replaceChildren(el("li", { class: "error" }, err.message));
  }
}

function listItem(item) {
  const when = new Date(item.created * 1000).toLocaleTimeString();
  const reason = el("span", { class: item.error ? "pill error" : "pill" }, item.finish_reason || "?");
  // A replica's own list carries usage; the trace store's (through the gateway) only erasures.
  const tokens = item.usage ? `${item.usage.completion_tokens} tok · ` : "";
  const sub = el("div", { class: "sub" }, `${item.mod || "no mod"} · ${tokens}${when} `, reason);
  const erased = item.erased_tokens ?? item.erasures;
  if (erased) sub.append(" ", el("span", { class: "pill erased" }, `${erased} erased`));
  const li = el("li", { dataset: { id: item.id }, onclick: () => openTrace(item.id) }, el("div", { class: "rid" }, item.id), sub);
  if (state.trace && state.trace.id === item.id) li.classList.add("selected");
  return li;
}

// ----- one trace ---------------------------------------------------------------------------------
async function openTrace(id) {
  showError("");
  try {
    const query = shareToken ? `?share=${encodeURIComponent(shareToken)}` : "";
    const trace = await api(`v1/traces/${encodeURIComponent(id)}${query}`);
    render(trace);
    if (!shareToken) history.replaceState(null, "", `?trace=${encodeURIComponent(id)}`);
    for (const li of $("trace-list").children) li.classList.toggle("selected", li.dataset.id === id);
  } catch (err) {
    showError(`Could not load trace ${id}: ${err.message}`);
  }
}

function render(trace) {
  state.trace = trace;
  state.pinned = null;
  $("empty").hidden = true;
  $("trace").hidden = false;
  $("share-link").hidden = true;
  $("trace-title").textContent = trace.id;
  renderMeta(trace);
  $("prompt-text").textContent = trace.prompt.text;
  renderTokens(trace);
  renderActions(trace);
  $("detail").hidden = true;
}

function renderMeta(trace) {
  const count = (pred) => trace.tokens.filter(pred).length;
  const items = [
    ["Model", trace.model],
    ["Mod", trace.mod || "none"],
    ["Finish reason", trace.finish_reason || "?"],
    ["Prompt tokens", trace.prompt.tokens.length],
    ["Sampled (incl. erased)", count((t) => t.kind === "sampled" && !t.stop)],
    ["Forced", count((t) => t.kind === "forced")],
    ["Erased", count((t) => t.erased)],
    ["Mod calls", trace.mod_calls.length],
  ];
  if (trace.error) items.push(["Error", trace.error]);
  $("trace-meta").replaceChildren(...items.map(([k, v]) => el("div", {}, el("dt", {}, k), el("dd", {}, v))));
}

function visible(text) {
  return text.replace(/\n/g, "⏎").replace(/\t/g, "⇥") || "∅";
}

function renderTokens(trace) {
  const acted = new Set(trace.mod_calls.filter((c) => c.action !== "noop" || c.error).map((c) => c.step));
  const chips = trace.tokens.map((token, index) => {
    const classes = ["tok", token.stop ? "stop" : token.kind];
    if (token.erased) classes.push("erased");
    if (acted.has(token.step)) classes.push("acted");
    return el(
      "span",
      {
        class: classes.join(" "),
        dataset: { index: String(index), step: String(token.step) },
        onmouseenter: (e) => showTip(e, index),
        onmouseleave: hideTip,
        onclick: () => pin(index),
      },
      visible(token.text),
    );
  });
  $("tokens").replaceChildren(...chips);
  if (!chips.length) $("tokens").append(el("span", { class: "muted" }, "No output tokens."));
}

function describe(token) {
  const kind = token.stop ? "stop token" : token.erased ? `${token.kind}, erased` : token.kind;
  const lp = token.logprob == null ? "" : ` · p=${Math.exp(token.logprob).toFixed(3)}`;
  return `step ${token.step} · ${kind}${lp}`;
}

function topkTable(token) {
  if (!token.top_logprobs.length) return el("p", { class: "muted" }, token.kind === "forced" ? "Forced: nothing was sampled." : "No top-k recorded.");
  const best = Math.exp(Math.max(...token.top_logprobs.map((alt) => alt.logprob)));
  const rows = token.top_logprobs.map((alt) => {
    const p = Math.exp(alt.logprob);
    const bar = el("div", { class: "bar", title: "relative to the most likely token" });
    bar.style.width = `${Math.max(1, Math.round((p / best) * 160))}px`;
    return el("tr", { class: alt.token === token.token ? "chosen" : "" },
      el("td", { class: "t" }, JSON.stringify(alt.text)), el("td", {}, bar), el("td", {}, p.toFixed(3)));
  });
  return el("table", { class: "topk" }, el("tbody", {}, ...rows));
}

function callsAt(step) {
  return state.trace.mod_calls.filter((c) => c.step === step);
}

function showTip(event, index) {
  const token = state.trace.tokens[index];
  const tip = $("tip");
  const acted = callsAt(token.step).filter((c) => c.action !== "noop");
  tip.replaceChildren(el("div", {}, el("b", {}, JSON.stringify(token.text)), " ", describe(token)), topkTable(token));
  for (const call of acted) tip.append(el("div", { class: "muted" }, `${call.event} → ${call.action} ${detailText(call)}`));
  tip.hidden = false;
  const box = event.target.getBoundingClientRect();
  tip.style.left = `${Math.min(box.left, window.innerWidth - 340)}px`;
  tip.style.top = `${box.bottom + 6}px`;
}

function hideTip() {
  $("tip").hidden = true;
}

function pin(index) {
  state.pinned = index;
  for (const chip of $("tokens").children) chip.classList.toggle("pinned", chip.dataset.index === String(index));
  const token = state.trace.tokens[index];
  const calls = callsAt(token.step);
  const rows = calls.map((c) => el("li", { class: c.error ? "err" : "" },
    `${c.event} → ${c.action} ${detailText(c)} (${c.latency_ms.toFixed(3)} ms)${c.error ? ` · ${c.error}` : ""}`));
  $("detail").replaceChildren(
    el("h3", {}, `Token ${JSON.stringify(token.text)} · ${describe(token)}`),
    topkTable(token),
    el("h3", {}, `Mod calls at step ${token.step}`),
    rows.length ? el("ul", {}, ...rows) : el("p", { class: "muted" }, "None."),
  );
  $("detail").hidden = false;
}

function detailText(call) {
  const entries = Object.entries(call.detail || {});
  return entries.length ? entries.map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`).join(" ") : "";
}

function renderActions(trace) {
  const acted = trace.mod_calls.filter((c) => c.action !== "noop" || c.error);
  const rows = acted.map((c) => el("tr", { onclick: () => highlightStep(c.step) },
    el("td", {}, c.step), el("td", {}, c.event),
    el("td", { class: c.error ? "err" : "" }, c.error ? `${c.action} (failed)` : c.action),
    el("td", { class: c.error ? "err" : "" }, c.error || detailText(c)),
    el("td", {}, `${c.latency_ms.toFixed(3)} ms`)));
  $("actions").tBodies[0].replaceChildren(...rows);
  const noops = trace.mod_calls.length - acted.length;
  $("noop-count").textContent = trace.mod ? `· ${acted.length} acted, ${noops} noop calls` : "· no mod";
}

function highlightStep(step) {
  for (const chip of $("tokens").children) chip.classList.toggle("highlight", chip.dataset.step === String(step));
}

// ----- sharing -----------------------------------------------------------------------------------
async function share() {
  try {
    const grant = await api(`v1/traces/${encodeURIComponent(state.trace.id)}/share`, { method: "POST" });
    $("share-url").textContent = grant.url;
    $("share-url").href = grant.url;
    $("share-expiry").textContent = `valid until ${new Date(grant.expires_at * 1000).toLocaleString()}`;
    $("share-link").hidden = false;
  } catch (err) {
    showError(`Could not share: ${err.message}`);
  }
}

// ----- sending a prompt, streamed ---------------------------------------------------------------
async function loadModels() {
  const { data } = await api("v1/models");
  const wanted = params.get("model");
  $("model").replaceChildren(...data.map((m) => el("option", { value: m.id }, m.id)));
  if (wanted && data.some((m) => m.id === wanted)) $("model").value = wanted;
}

async function send(event) {
  event.preventDefault();
  showError("");
  $("send").disabled = true;
  $("live").hidden = false;
  $("live-text").textContent = "";
  $("live-status").textContent = "waiting…";
  const body = {
    model: $("model").value,
    messages: [{ role: "user", content: $("prompt").value }],
    max_tokens: Number($("max-tokens").value),
    temperature: Number($("temperature").value),
    stream: true,
  };
  try {
    const id = await stream(body);
    $("live-status").textContent = "done";
    if (id) await openTrace(id);
    await loadList();
  } catch (err) {
    $("live-status").textContent = "failed";
    showError(err.message);
    await loadList();
  } finally {
    $("send").disabled = false;
  }
}

async function stream(body) {
  const response = await fetch("v1/chat/completions", {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/json" }),
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const error = await response.json().catch(() => ({}));
    throw new Error((error.error && error.error.message) || `${response.status} ${response.statusText}`);
  }
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let id = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return id;
    buffer += value;
    const events = buffer.split("\n\n");
    buffer = events.pop();
    for (const raw of events) {
      if (!raw.startsWith("data: ")) continue;
      const data = raw.slice(6);
      if (data === "[DONE]") return id;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      id = chunk.id || id;
      const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
      if (delta && delta.content) {
        $("live-text").textContent += delta.content;
        $("live-status").textContent = "streaming…";
      }
    }
  }
}

// ----- start -------------------------------------------------------------------------------------
function start() {
  const trace = params.get("trace");
  if (shareToken) {
    document.body.classList.add("shared");
    $("sidebar").hidden = true;
    $("shared-banner").hidden = false;
    $("share").hidden = true;
    $("api-key").closest("label").hidden = true;
    if (trace) openTrace(trace);
    return;
  }
  $("api-key").value = sessionStorage.getItem("quote.apiKey") || "";
  $("api-key").addEventListener("change", (e) => {
    sessionStorage.setItem("quote.apiKey", e.target.value);
    loadList();
    loadModels().catch((err) => showError(err.message));
    // Arrived from a Grafana link without a key in this tab: the key now opens the linked trace.
    if (trace && !state.trace) openTrace(trace);
  });
  $("compose-form").addEventListener("submit", send);
  $("refresh").addEventListener("click", loadList);
  $("share").addEventListener("click", share);
  loadModels().catch((err) => showError(`Could not list models: ${err.message}`));
  loadList();
  if (trace) openTrace(trace);
}

start();
