// toklip's playground: the server's own API (OpenAI's routes and toklip's /v1/images/tokens),
// called from the browser as any client would. No framework, nothing fetched from elsewhere.

const $ = (id) => document.getElementById(id);
const KEY = "toklip-api-key";

// --- the API ---------------------------------------------------------------------------------

class APIError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

// api calls a route with the key this browser keeps, if any; an error answer throws with the
// server's own message (a 401 also asks for a key).
async function api(path, body, signal) {
  const headers = {};
  const key = localStorage.getItem(KEY);
  if (key) headers.Authorization = "Bearer " + key;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method: body === undefined ? "GET" : "POST", headers, signal,
    body: body === undefined ? undefined : JSON.stringify(body) });
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = (await r.json()).error.message || msg; } catch { /* not JSON: the status says it */ }
    if (r.status === 401) askKey(msg);
    throw new APIError(msg, r.status);
  }
  return r;
}

// events reads a server-sent event stream: {event, data} with data parsed as JSON ("[DONE]"
// ends it). An error event or object throws with the server's message.
async function* events(resp) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let end;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = "", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trimStart();
      }
      if (!data) continue;
      if (data === "[DONE]") return;
      const v = JSON.parse(data);
      if (v.error) throw new APIError(v.error.message || String(v.error), 0);
      yield { event, data: v };
    }
  }
}

function showError(msg) {
  const e = $("error");
  e.textContent = msg;
  e.hidden = !msg;
}

function askKey(reason) {
  const d = $("key-dialog");
  $("key-reason").textContent = reason || "";
  $("key-input").value = localStorage.getItem(KEY) || "";
  if (!d.open) d.showModal();
}

$("key-button").addEventListener("click", () => askKey("The key this server was started with (-api-key)."));
$("key-dialog").addEventListener("close", () => {
  const v = $("key-dialog").returnValue;
  if (v === "save" && $("key-input").value) localStorage.setItem(KEY, $("key-input").value);
  else if (v === "forget") localStorage.removeItem(KEY);
  else return;
  loadModels();
});

// --- models ----------------------------------------------------------------------------------

let models = [];

async function loadModels() {
  try {
    const r = await api("/v1/models");
    models = (await r.json()).data;
    const sel = $("model");
    const was = sel.value;
    sel.replaceChildren(...models.map((m) => new Option(m.id, m.id)));
    const pick = models.find((m) => m.id === was) || models.find((m) => m.id === "toklip-demo") || models[0];
    if (pick) sel.value = pick.id;
    showError("");
    modelChanged();
  } catch (e) {
    showError(e.message);
  }
}

function model() { return models.find((m) => m.id === $("model").value) || {}; }

function modelChanged() {
  const m = model();
  const inputs = m.input_modalities || [], outputs = m.output_modalities || [];
  const caps = [];
  if (inputs.includes("image")) caps.push("reads images");
  if (outputs.includes("image")) caps.push("draws images");
  $("caps").textContent = caps.join(" · ");
  $("chat-draw").disabled = !outputs.includes("image");
  $("d-go").disabled = !outputs.includes("image");
  updateCode();
}
$("model").addEventListener("change", modelChanged);

// --- tabs ------------------------------------------------------------------------------------

const tabs = [...document.querySelectorAll("[role=tab]")];
function selectTab(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", on);
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  tab.focus();
}
for (const t of tabs) {
  t.addEventListener("click", () => selectTab(t));
  t.addEventListener("keydown", (e) => { // arrow keys move between tabs, as WAI-ARIA's tabs do
    const i = tabs.indexOf(t);
    if (e.key === "ArrowRight") selectTab(tabs[(i + 1) % tabs.length]);
    if (e.key === "ArrowLeft") selectTab(tabs[(i + tabs.length - 1) % tabs.length]);
  });
}

// --- images ----------------------------------------------------------------------------------

function readDataURL(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

function imageFiles(list) { return [...(list || [])].filter((f) => f.type.startsWith("image/")); }

function downloadLink(url, name) {
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.textContent = "Download";
  return a;
}

function slug(text) {
  return (text.toLowerCase().match(/[\p{L}\p{N}]+/gu) || ["image"]).join("-").slice(0, 48);
}

// --- chat ------------------------------------------------------------------------------------

let history = []; // OpenAI messages so far
let attached = []; // data URLs for the next message
let running = null; // the AbortController of the answer in progress

function settings() {
  const out = {};
  for (const [name, kind] of [["temperature", "f"], ["top_p", "f"], ["seed", "i"], ["max_tokens", "i"], ["guidance_scale", "f"]]) {
    const v = $("s-" + name).value;
    if (v !== "") out[name] = kind === "i" ? parseInt(v, 10) : parseFloat(v);
  }
  return out;
}

function userMessage(text, images) {
  if (!images.length) return { role: "user", content: text };
  return { role: "user", content: [...images.map((url) => ({ type: "image_url", image_url: { url } })), { type: "text", text }] };
}

function chatRequest(text, images) {
  const req = { model: $("model").value, messages: [...history, userMessage(text, images)], ...settings() };
  if ($("chat-draw").checked && !$("chat-draw").disabled) {
    req.modalities = ["text", "image"];
  }
  return req;
}

function renderAttachments() {
  $("attachments").replaceChildren(...attached.map((url, i) => {
    const f = document.createElement("figure");
    const img = new Image();
    img.src = url;
    img.alt = "attached image " + (i + 1);
    const x = document.createElement("button");
    x.type = "button";
    x.textContent = "×";
    x.setAttribute("aria-label", "remove attached image " + (i + 1));
    x.onclick = () => { attached.splice(i, 1); renderAttachments(); updateCode(); };
    f.append(img, x);
    return f;
  }));
}

async function attach(files) {
  for (const f of imageFiles(files)) attached.push(await readDataURL(f));
  renderAttachments();
  updateCode();
}

function bubble(role, cls) {
  const d = document.createElement("div");
  d.className = "msg " + role + (cls ? " " + cls : "");
  const hint = $("messages").querySelector(".hint");
  if (hint) hint.remove();
  $("messages").append(d);
  return d;
}

function scrollDown() { $("messages").scrollTop = $("messages").scrollHeight; }

async function send() {
  const text = $("chat-input").value.trim();
  if (!text && !attached.length) return;
  if (running) return;
  const images = attached;
  const req = chatRequest(text, images);
  req.stream = true;
  req.stream_options = { include_usage: true };
  if (req.modalities) req.partial_images = 2;

  const u = bubble("user");
  for (const url of images) { const img = new Image(); img.src = url; img.alt = "your image"; u.append(img); }
  u.append(text);
  $("chat-input").value = "";
  attached = [];
  renderAttachments();

  const a = bubble("assistant");
  a.setAttribute("aria-busy", "true");
  let textNode = document.createTextNode("");
  a.append(textNode);
  let partial = null, answer = "", drawn = 0, seed = null, usage = null;
  running = new AbortController();
  $("stop").hidden = false;
  $("send").disabled = true;
  try {
    const r = await api("/v1/chat/completions", req, running.signal);
    for await (const { data } of events(r)) {
      if (data.seed !== undefined) seed = data.seed;
      if (data.usage) usage = data.usage;
      const d = data.choices && data.choices[0] && data.choices[0].delta;
      if (!d) continue;
      if (d.partial_image) {
        if (!partial) { partial = new Image(); partial.className = "partial"; partial.alt = "drawing in progress"; a.append(partial); }
        partial.src = d.partial_image.url;
        partial.dataset.partialIndex = d.partial_image.partial_image_index;
      }
      if (typeof d.content === "string" && d.content) {
        answer += d.content;
        textNode.data += d.content;
      } else if (Array.isArray(d.content)) {
        for (const p of d.content) {
          if (p.type !== "image_url") continue;
          drawn++;
          const img = new Image();
          img.className = "drawn";
          img.alt = "drawn image " + drawn;
          img.src = p.image_url.url;
          if (partial) { partial.replaceWith(img); partial = null; } else a.append(img);
          img.after(downloadLink(p.image_url.url, slug(text) + (drawn > 1 ? "-" + drawn : "") + ".png"));
          textNode = document.createTextNode("");
          a.append(textNode);
        }
      }
      scrollDown();
    }
    history.push(userMessage(text, images), { role: "assistant", content: answer });
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = [seed !== null && "seed " + seed, usage && usage.completion_tokens + " tokens"].filter(Boolean).join(" · ");
    a.append(meta);
  } catch (e) {
    if (e.name === "AbortError") {
      a.append(" (stopped)");
    } else {
      a.classList.add("error");
      a.append((answer ? "\n" : "") + e.message);
    }
  } finally {
    a.removeAttribute("aria-busy");
    running = null;
    $("stop").hidden = true;
    $("send").disabled = false;
    $("chat-input").focus();
    updateCode();
    scrollDown();
  }
}

$("chat-form").addEventListener("submit", (e) => { e.preventDefault(); send(); });
$("chat-input").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
});
$("chat-input").addEventListener("input", updateCode);
$("stop").addEventListener("click", () => running && running.abort());
$("attach").addEventListener("click", () => $("chat-file").click());
$("chat-file").addEventListener("change", (e) => { attach(e.target.files); e.target.value = ""; });
$("clear").addEventListener("click", () => {
  history = [];
  $("messages").replaceChildren();
  updateCode();
});
$("chat-input").addEventListener("paste", (e) => {
  const files = imageFiles(e.clipboardData && e.clipboardData.files);
  if (files.length) { e.preventDefault(); attach(files); }
});
for (const id of ["s-temperature", "s-top_p", "s-seed", "s-max_tokens", "s-guidance_scale", "chat-draw"]) {
  $(id).addEventListener("input", updateCode);
}

function dropZone(el, onFiles) {
  el.addEventListener("dragover", (e) => { e.preventDefault(); el.classList.add("drop"); });
  el.addEventListener("dragleave", () => el.classList.remove("drop"));
  el.addEventListener("drop", (e) => {
    e.preventDefault();
    el.classList.remove("drop");
    onFiles(e.dataTransfer.files);
  });
}
dropZone($("chat-panel"), attach);

// --- the request as code ---------------------------------------------------------------------

// What is shown leaves images' base64 out (it can be megabytes): a placeholder says where.
function shown(req) {
  return JSON.parse(JSON.stringify(req, (k, v) =>
    typeof v === "string" && v.startsWith("data:image/") ? v.slice(0, v.indexOf(",") + 1) + "<base64 of your image>" : v));
}

function updateCode() {
  const req = shown(chatRequest($("chat-input").value, attached));
  const base = location.origin;
  const auth = localStorage.getItem(KEY) ? ' \\\n  -H "Authorization: Bearer $TOKLIP_API_KEY"' : "";
  $("code-curl").textContent = `curl ${base}/v1/chat/completions${auth} \\\n  -H "Content-Type: application/json" \\\n  -d '${JSON.stringify(req, null, 2).replaceAll("'", "'\\''")}'`;
  const { model, messages, ...rest } = req;
  const extra = {};
  for (const k of ["guidance_scale"]) if (k in rest) { extra[k] = rest[k]; delete rest[k]; }
  const args = [`model=${py(model)}`, `messages=${py(messages)}`, ...Object.entries(rest).map(([k, v]) => `${k}=${py(v)}`)];
  if (Object.keys(extra).length) args.push(`extra_body=${py(extra)}`);
  $("code-python").textContent = `from openai import OpenAI\n\nclient = OpenAI(base_url="${base}/v1", api_key="${localStorage.getItem(KEY) ? "YOUR_KEY" : "unused"}")\nresp = client.chat.completions.create(\n    ${args.join(",\n    ")},\n)\nprint(resp.choices[0].message.content)\n`;
}

function py(v) { // a JSON value as a Python literal
  return JSON.stringify(v).replace(/\btrue\b/g, "True").replace(/\bfalse\b/g, "False").replace(/\bnull\b/g, "None");
}

for (const b of document.querySelectorAll("button.copy")) {
  b.addEventListener("click", async () => {
    const text = $(b.dataset.copy).textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch { // no clipboard permission (an http page that is not localhost): select it to copy by hand
      getSelection().selectAllChildren($(b.dataset.copy));
    }
    b.textContent = "Copied";
    setTimeout(() => { b.textContent = "Copy"; }, 1200);
  });
}

// --- draw ------------------------------------------------------------------------------------

async function drawOne(card, req) {
  const img = card.querySelector("img"), cap = card.querySelector("figcaption");
  try {
    const r = await api("/v1/images/generations", req);
    for await (const { event, data } of events(r)) {
      if (event === "image_generation.partial_image") {
        img.src = "data:image/png;base64," + data.b64_json;
        img.className = "partial";
        cap.textContent = `partial ${data.partial_image_index + 1} of ${req.partial_images}`;
      } else if (event === "image_generation.completed") {
        const url = "data:image/png;base64," + data.b64_json;
        img.src = url;
        img.className = "final";
        img.alt = req.prompt;
        const t = data.timings || {};
        cap.textContent = `prompt ${fmt(t.prompt_ms)} · tokens ${fmt(t.tokens_ms)} · decode ${fmt(t.decode_ms)} · seed ${data.seed} `;
        cap.append(downloadLink(url, slug(req.prompt) + "-" + data.seed + ".png"));
      }
    }
  } catch (e) {
    card.classList.add("error");
    cap.textContent = e.message;
    showError(e.message);
  }
}

function fmt(ms) { return ms === undefined ? "?" : ms >= 1000 ? (ms / 1000).toFixed(2) + " s" : Math.round(ms) + " ms"; }

$("draw-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  showError("");
  const n = Math.max(1, Math.min(4, parseInt($("d-n").value || "1", 10)));
  const base = { model: $("model").value, prompt: $("d-prompt").value, stream: true, partial_images: 3 };
  if ($("d-negative").value) base.negative_prompt = $("d-negative").value;
  if ($("d-guidance").value) base.guidance_scale = parseFloat($("d-guidance").value);
  const seed = $("d-seed").value === "" ? null : parseInt($("d-seed").value, 10);
  $("d-go").disabled = true;
  const cards = [];
  for (let i = 0; i < n; i++) { // one streamed request each (a stream draws one image), all at once: the server batches them
    const card = document.createElement("figure");
    card.className = "card";
    const img = new Image();
    img.alt = "drawing " + (i + 1);
    const cap = document.createElement("figcaption");
    cap.textContent = "waiting";
    card.append(img, cap);
    cards.push(drawOne(card, seed === null ? base : { ...base, seed: seed + i }));
    $("grid").prepend(card);
  }
  await Promise.all(cards);
  $("d-go").disabled = false;
});

// --- look inside -----------------------------------------------------------------------------

let inspected = null; // the data URL looked at

async function inspect(files) {
  const [file] = imageFiles(files);
  if (!file) return;
  showError("");
  $("i-name").textContent = file.name;
  inspected = await readDataURL(file);
  try {
    const r = await api("/v1/images/tokens", { model: $("model").value, image: inspected });
    const t = await r.json();
    $("i-crop").src = "data:image/png;base64," + t.crop;
    $("i-recon").src = "data:image/png;base64," + t.reconstruction;
    $("i-grid").textContent = `${t.grid} × ${t.grid}`;
    const cells = $("i-cells");
    cells.style.gridTemplateColumns = `repeat(${t.grid}, 1fr)`;
    cells.replaceChildren();
    t.ids.forEach((row, r) => row.forEach((id, c) => {
      const d = document.createElement("div");
      d.tabIndex = r === 0 && c === 0 ? 0 : -1;
      d.setAttribute("role", "gridcell");
      d.dataset.id = id;
      d.title = `row ${r}, column ${c}: id ${id}`;
      d.setAttribute("aria-label", d.title);
      const say = () => { $("i-hover").textContent = d.title; };
      d.addEventListener("mouseenter", say);
      d.addEventListener("focus", say);
      d.addEventListener("keydown", (e) => { // arrow keys walk the grid
        const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: t.grid, ArrowUp: -t.grid }[e.key];
        const next = step && cells.children[r * t.grid + c + step];
        if (next) { e.preventDefault(); d.tabIndex = -1; next.tabIndex = 0; next.focus(); }
      });
      cells.append(d);
    }));
    $("inspect-result").hidden = false;
    $("ranking").replaceChildren();
  } catch (e) {
    showError(e.message);
  }
}

$("i-file").addEventListener("change", (e) => { inspect(e.target.files); e.target.value = ""; });
$("i-choose").addEventListener("click", () => $("i-file").click());
dropZone($("inspect-panel"), inspect);

$("rank-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const captions = $("i-captions").value.split("\n").map((s) => s.trim()).filter(Boolean);
  if (!captions.length || !inspected) return;
  showError("");
  try {
    const r = await api("/v1/embeddings", { model: $("model").value, input: [inspected, ...captions] });
    const vecs = (await r.json()).data.sort((a, b) => a.index - b.index).map((d) => d.embedding);
    const cos = (a, b) => {
      let ab = 0, aa = 0, bb = 0;
      for (let i = 0; i < a.length; i++) { ab += a[i] * b[i]; aa += a[i] * a[i]; bb += b[i] * b[i]; }
      return ab / Math.sqrt(aa * bb);
    };
    const ranked = captions.map((text, i) => ({ text, score: cos(vecs[0], vecs[i + 1]) })).sort((a, b) => b.score - a.score);
    const lo = Math.min(...ranked.map((x) => x.score)), hi = Math.max(...ranked.map((x) => x.score));
    $("ranking").replaceChildren(...ranked.map((x) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.className = "caption";
      name.textContent = x.text;
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = x.score.toFixed(3);
      const bar = document.createElement("div");
      bar.className = "bar";
      bar.style.width = (hi > lo ? 10 + 90 * (x.score - lo) / (hi - lo) : 100) + "%";
      li.append(name, score, bar);
      return li;
    }));
  } catch (e) {
    showError(e.message);
  }
});

loadModels();
