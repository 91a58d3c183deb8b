// vitalflow SQL console: plain JavaScript over the console's HTTP API (see /docs).
"use strict";
const $ = (id) => document.getElementById(id);
const PAGE_SIZE = 50;
const state = { tables: [], names: [], rows: [], columns: [], page: 0, queryId: null };

async function api(path, options = {}) {
  const response = await fetch(path, {
    headers: { "Content-Type": "application/json" }, credentials: "same-origin", ...options });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function item(list, text, onClick, title) {
  const li = document.createElement("li");
  li.textContent = text;
  if (title) li.title = title;
  li.addEventListener("click", onClick);
  list.appendChild(li);
  return li;
}

async function showConsole() {
  let me;
  try { me = await api("/api/me"); } catch { return showLogin(); }
  $("login-view").hidden = true;
  $("console-view").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${me.user} (${me.role}) · profile ${me.profile}`;
  $("engine").value = me.engine;
  state.tables = await api("/api/tables");
  state.names = [...new Set(state.tables.flatMap(
    (t) => [t.name, ...t.columns.map((c) => c.name)]))].sort();
  $("tables").replaceChildren();
  for (const table of state.tables) {
    item($("tables"), table.name, () => describe(table), table.description)
      .dataset.table = table.name;
  }
  $("examples").replaceChildren();
  for (const example of await api("/api/examples")) {
    item($("examples"), example.title, () => { $("editor").value = example.sql; });
  }
  await refreshSaved();
  await refreshHistory();
}

function showLogin() {
  $("login-view").hidden = false;
  $("console-view").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
}

function describe(table) {
  const box = $("dictionary");
  box.replaceChildren();
  const title = document.createElement("p");
  title.innerHTML = `<strong></strong>: <span></span>`;
  title.querySelector("strong").textContent = table.name;
  title.querySelector("span").textContent = table.description +
    (table.owner ? ` Written by ${table.owner}.` : "");
  const list = document.createElement("dl");
  for (const column of table.columns) {
    const dt = document.createElement("dt");
    dt.textContent = `${column.name} ${column.type}${column.unit ? " [" + column.unit + "]" : ""}`;
    const dd = document.createElement("dd");
    dd.textContent = column.description + (column.pii !== "none" ? ` (${column.pii})` : "") +
      (column.upstream && column.upstream.length ? ` ← from ${column.upstream.join(", ")}` : "");
    list.append(dt, dd);
  }
  box.append(title, list);
}

async function refreshSaved() {
  const saved = await api("/api/saved");
  $("saved").replaceChildren();
  for (const [name, sql] of Object.entries(saved)) {
    item($("saved"), name, () => { $("editor").value = sql; }, sql);
  }
}

async function refreshHistory() {
  const history = await api("/api/history");
  $("history").replaceChildren();
  for (const entry of history.slice(0, 20)) {
    const rows = entry.rows === null ? "" : ` · ${entry.rows} rows`;
    item($("history"), `${entry.outcome}${rows} · ${entry.statement.replace(/\s+/g, " ")}`,
         () => { $("editor").value = entry.statement; }, entry.message || entry.statement);
  }
}

async function run() {
  const sql = $("editor").value;
  $("error").textContent = "";
  $("status").textContent = "running…";
  setDownloads(null);
  try {
    const result = await api("/api/query", {
      method: "POST", body: JSON.stringify({ sql, engine: $("engine").value }) });
    state.rows = result.rows;
    state.columns = result.columns;
    state.page = 0;
    state.queryId = result.query_id;
    $("status").textContent = `${result.row_count} rows · ${result.engine} · ` +
      `${Math.round(result.duration_ms)} ms${result.truncated ? " · cut at the row limit" : ""}`;
    setDownloads(result.query_id);
    renderPage();
  } catch (error) {
    $("status").textContent = "";
    $("error").textContent = error.message;
    Object.assign(state, { rows: [], columns: [], page: 0 });
    renderPage();
  }
  refreshHistory();
}

function setDownloads(queryId) {
  for (const [id, suffix] of [["download-csv", "csv"], ["download-parquet", "parquet"]]) {
    const link = $(id);
    link.classList.toggle("disabled", !queryId);
    link.href = queryId ? `/api/results/${queryId}.${suffix}` : "#";
  }
}

function renderPage() {
  const grid = $("grid");
  grid.replaceChildren();
  const head = grid.createTHead().insertRow();
  for (const column of state.columns) {
    const th = document.createElement("th");
    th.textContent = column;
    head.appendChild(th);
  }
  const body = grid.createTBody();
  const start = state.page * PAGE_SIZE;
  for (const row of state.rows.slice(start, start + PAGE_SIZE)) {
    const tr = body.insertRow();
    for (const column of state.columns) {
      tr.insertCell().textContent = row[column] === null ? "" : String(row[column]);
    }
  }
  const pages = Math.max(1, Math.ceil(state.rows.length / PAGE_SIZE));
  $("page").textContent = `page ${state.page + 1} of ${pages}`;
  $("prev").disabled = state.page === 0;
  $("next").disabled = state.page >= pages - 1;
}

// Completion of table and column names: the word before the cursor against the catalog.
function currentWord() {
  const editor = $("editor");
  const before = editor.value.slice(0, editor.selectionStart);
  const match = before.match(/[A-Za-z_][\w.]*$/);
  return match ? match[0] : "";
}

function complete(force) {
  const word = currentWord();
  const box = $("completions");
  if (!word && !force) { box.hidden = true; return; }
  const lower = word.toLowerCase();
  const matches = state.names.filter((n) => n.toLowerCase().startsWith(lower) && n !== word)
    .slice(0, 12);
  box.replaceChildren();
  matches.forEach((name, index) => {
    const li = item(box, name, () => accept(name));
    if (index === 0) li.classList.add("active");
  });
  box.hidden = matches.length === 0;
}

function accept(name) {
  const editor = $("editor");
  const word = currentWord();
  const at = editor.selectionStart;
  editor.value = editor.value.slice(0, at - word.length) + name + editor.value.slice(at);
  editor.selectionStart = editor.selectionEnd = at - word.length + name.length;
  $("completions").hidden = true;
  editor.focus();
}

function moveSelection(step) {
  const items = [...$("completions").children];
  const index = items.findIndex((li) => li.classList.contains("active"));
  items[index]?.classList.remove("active");
  items[(index + step + items.length) % items.length]?.classList.add("active");
}

$("editor").addEventListener("keydown", (event) => {
  const open = !$("completions").hidden;
  if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); run(); return; }
  if (event.key === " " && event.ctrlKey) { event.preventDefault(); complete(true); return; }
  if (!open) return;
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    moveSelection(event.key === "ArrowDown" ? 1 : -1);
  } else if (event.key === "Tab" || event.key === "Enter") {
    event.preventDefault();
    accept($("completions").querySelector(".active").textContent);
  } else if (event.key === "Escape") {
    $("completions").hidden = true;
  }
});
$("editor").addEventListener("input", () => complete(false));

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await api("/api/login", { method: "POST", body: JSON.stringify(
      { user: $("login-user").value, password: $("login-password").value }) });
    $("login-password").value = "";
    await showConsole();
  } catch (error) {
    $("login-error").textContent = error.message;
  }
});
$("logout").addEventListener("click", async () => {
  await api("/api/logout", { method: "POST" });
  showLogin();
});
$("run").addEventListener("click", run);
$("prev").addEventListener("click", () => { state.page -= 1; renderPage(); });
$("next").addEventListener("click", () => { state.page += 1; renderPage(); });
$("save").addEventListener("click", async () => {
  const name = prompt("Name of the saved query");
  if (!name) return;
  await api("/api/saved", { method: "POST", body: JSON.stringify(
    { name, sql: $("editor").value }) });
  refreshSaved();
});

showConsole();
