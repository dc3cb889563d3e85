// The supervisor page (service/server/ui.py): asks for the admin token, keeps it in
// this tab's sessionStorage, and polls the service's JSON API with it every 2 s. Every
// text from the service is put in the page as text (never as HTML); diagrams are SVG
// fetched with the token and shown as images (blob: URLs), where nothing runs.
"use strict";

(() => {
  const TOKEN_KEY = "ivr-admin-token";
  const REFRESH_MS = 2000;
  const DIAGRAM_MS = 15000;
  // The page is <root>/admin/ui: the API is under <root>/ (a proxy's prefix kept).
  const ROOT = new URL("../", document.baseURI);

  const $ = (id) => document.getElementById(id);
  const state = {
    timer: null,
    generation: 0, // a new one at each log in and log out: late answers are dropped
    selected: null, // the call whose timeline is shown
    diagramsKey: "",
    diagramsAt: 0,
    callsKey: "", // where the live calls are: the diagrams' counts move when it changes
    callsMoved: false,
    diagramUrls: new Map(), // graph id -> blob: URL of its diagram
  };

  class HttpError extends Error {
    constructor(status, reason) {
      super(reason);
      this.status = status;
    }
  }

  // --- the API ------------------------------------------------------------------------

  async function request(path, accept = "application/json") {
    const response = await fetch(new URL(path, ROOT), {
      headers: { Authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) || ""}`, Accept: accept },
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    });
    if (!response.ok) {
      let reason = `${response.status} ${response.statusText}`.trim();
      try {
        const body = await response.json();
        if (body && typeof body.reason === "string") reason = body.reason;
      } catch (_) {
        // not JSON: the status says it
      }
      throw new HttpError(response.status, reason);
    }
    return response;
  }

  const getJson = async (path) => (await request(path)).json();

  function describe(error) {
    if (error instanceof HttpError) return `${error.message} (${error.status})`;
    return "the service does not answer";
  }

  // --- building the page (text only) --------------------------------------------------

  function el(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value !== null && value !== undefined && value !== false) {
        node.setAttribute(name, value === true ? "" : String(value));
      }
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function clockTime(iso, withMs = false) {
    const moment = new Date(iso);
    if (typeof iso !== "string" || Number.isNaN(moment.getTime())) return "–";
    const text = moment.toLocaleTimeString([], { hour12: false });
    return withMs ? `${text}.${String(moment.getMilliseconds()).padStart(3, "0")}` : text;
  }

  function time(iso, withMs = false) {
    const text = clockTime(iso, withMs);
    return text === "–" ? el("span", { class: "muted" }, text) : el("time", { datetime: iso, title: iso }, text);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    if (s < 60) return `${s} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
    return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
  }

  const badge = (text, kind) =>
    el("span", { class: `badge ${kind}-${String(text).replace(/[^A-Za-z0-9_-]/g, "")}` }, text);

  const shortId = (id) => (id && id.length > 12 ? `${id.slice(0, 8)}…` : id || "");

  function fill(tableId, emptyId, rows) {
    $(tableId).tBodies[0].replaceChildren(...rows);
    $(tableId).hidden = rows.length === 0;
    $(emptyId).hidden = rows.length > 0;
  }

  // --- sections -----------------------------------------------------------------------

  async function loadCalls() {
    const body = await getJson("admin/calls");
    const calls = body.calls || [];
    const focused = document.activeElement && document.activeElement.dataset.callId;
    $("calls-count").textContent = String(body.count ?? calls.length);
    const callsKey = calls.map((call) => `${call.call_id}:${call.node}`).join(",");
    if (callsKey !== state.callsKey) state.callsMoved = true;
    state.callsKey = callsKey;
    const rows = calls.map((call) => {
      const chosen = call.call_id === state.selected;
      const open = el(
        "button",
        { type: "button", class: "link", "data-call-id": call.call_id, "aria-current": chosen ? "true" : null,
          title: `Show the timeline of call ${call.call_id}` },
        shortId(call.call_id),
      );
      open.addEventListener("click", () => select(call.call_id));
      const row = el(
        "tr",
        { "data-call-id": call.call_id, class: chosen ? "selected" : null },
        el("td", null, open),
        el("td", null, call.graph, " ", el("span", { class: "muted" }, call.version)),
        el("td", null, el("code", null, call.node)),
        el("td", null, badge(call.phase, "phase")),
        el("td", null, call.direction),
        el("td", null, call.caller),
        el("td", null, call.called),
        el("td", null, time(call.started_at)),
        el("td", { class: "num" }, duration(call.age_s)),
      );
      row.addEventListener("click", (event) => {
        if (event.target === row || event.target.tagName === "TD") select(call.call_id);
      });
      return row;
    });
    fill("calls-table", "calls-empty", rows);
    if (focused) {
      const again = $("calls-table").querySelector(`button[data-call-id="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  function select(callId) {
    state.selected = callId;
    $("call-detail-id").textContent = callId;
    $("call-detail").hidden = false;
    for (const row of $("calls-table").tBodies[0].rows) {
      row.classList.toggle("selected", row.dataset.callId === callId);
    }
    loadDetail().catch(onFailure);
    $("call-detail").scrollIntoView({ block: "nearest" });
  }

  function closeDetail() {
    state.selected = null;
    $("call-detail").hidden = true;
    for (const row of $("calls-table").tBodies[0].rows) row.classList.remove("selected");
  }

  async function loadDetail() {
    const callId = state.selected;
    if (!callId) return;
    let body;
    try {
      body = await getJson(`admin/calls/${encodeURIComponent(callId)}`);
    } catch (error) {
      if (error instanceof HttpError && error.status === 404 && state.selected === callId) {
        const note = $("call-detail-note");
        note.textContent = "This call is no longer kept (it ended long ago, or is unknown).";
        note.hidden = false;
        return;
      }
      throw error;
    }
    if (state.selected !== callId) return;
    const call = body.call || {};
    const note = $("call-detail-note");
    note.hidden = !call.ended;
    note.textContent = call.ended ? `This call has ended${call.outcome ? `: ${call.outcome}` : ""}.` : "";
    const facts = [
      ["Graph", `${call.graph} (version ${call.version})`],
      ["Node", call.node],
      ["Phase", call.phase],
      ["Direction", call.direction],
      ["Caller", call.caller],
      ["Called", call.called],
      ["Started", time(call.started_at)],
      ["Last change", time(call.updated_at)],
      ["On the line", duration(call.age_s)],
      ["Outcome", call.outcome || (call.ended ? "ended" : "live")],
    ];
    $("call-summary").replaceChildren(...facts.flatMap(([name, value]) => [el("dt", null, name), el("dd", null, value)]));
    const pending = body.pending;
    $("call-pending").replaceChildren(
      pending
        ? el("span", null, el("code", null, pending.action), ` ${pending.status}, attempt ${pending.attempts}, due `, time(pending.due_at))
        : "None.",
    );
    const items = (body.timeline || []).map((moment) =>
      el("li", { "data-kind": moment.kind }, time(moment.at, true), " ", badge(moment.kind, "kind"), " ",
         moment.node ? el("code", { class: "node" }, moment.node) : null, moment.node ? " " : null, moment.text),
    );
    $("call-timeline").replaceChildren(...items);
  }

  async function loadQueues() {
    const body = await getJson("queues");
    const rows = Object.entries(body.queues || {}).map(([name, queue]) => {
      const agents = queue.agents || {};
      const byStatus = agents.by_status || {};
      const byState = agents.by_state || {};
      const today = queue.today || {};
      return el(
        "tr",
        { "data-queue": name },
        el("th", { scope: "row" }, name),
        el("td", { class: "num" }, (queue.waiting || []).length),
        el("td", { class: "num" }, duration(queue.longest_wait_s)),
        el("td", { class: "num" }, queue.callbacks_pending ?? 0),
        el("td", { class: "num", title: `${agents.total || 0} agent(s) in this queue` }, byStatus.available || 0),
        el("td", { class: "num" }, byState.in_call || 0),
        el("td", { class: "num" }, today.joined ?? 0),
        el("td", { class: "num" }, today.answered ?? 0),
        el("td", { class: "num" }, today.abandoned ?? 0),
        el("td", { class: "num" }, today.average_wait_s === null || today.average_wait_s === undefined ? "–" : duration(today.average_wait_s)),
      );
    });
    fill("queues-table", "queues-empty", rows);
  }

  async function loadAgents() {
    const body = await getJson("agents");
    const rows = (body.agents || []).map((agent) =>
      el(
        "tr",
        { "data-agent-id": agent.id },
        el("th", { scope: "row" }, agent.name || agent.id, " ", el("span", { class: "muted" }, agent.id)),
        el("td", null, badge(agent.status, "status")),
        el("td", null, badge(agent.state, "state"), agent.call_id ? el("span", { class: "muted" }, ` ${shortId(agent.call_id)}`) : null),
        el("td", null, Object.keys(agent.queues || {}).join(", ")),
        el("td", { class: "num" }, agent.calls_today ?? 0),
        el("td", { class: "num" }, duration(agent.talk_s_today ?? 0)),
      ),
    );
    fill("agents-table", "agents-empty", rows);
  }

  async function loadErrors() {
    const body = await getJson("admin/errors");
    const errors = body.errors || [];
    $("errors-count").textContent = String(errors.length);
    const rows = errors.map((error) =>
      el(
        "tr",
        { "data-level": error.level, "data-event": error.event },
        el("td", null, time(error.at)),
        el("td", null, badge(error.level, "level")),
        el("td", null, el("code", null, error.event)),
        el("td", null, error.call_id ? el("span", { title: error.call_id }, shortId(error.call_id)) : "–"),
        el("td", null, [error.graph, error.node].filter(Boolean).join(" / ") || "–"),
        el("td", { class: "details" }, error.text),
      ),
    );
    fill("errors-table", "errors-empty", rows);
  }

  async function loadGraphs(force = false) {
    const body = await getJson("admin/graphs");
    const graphs = body.graphs || [];
    const traffic = $("traffic").value;
    const key = `${graphs.map((g) => `${g.id}@${g.version}`).join(",")}|${traffic}`;
    const due = force || state.callsMoved || Date.now() - state.diagramsAt >= DIAGRAM_MS;
    if (!due && key === state.diagramsKey) return;
    state.callsMoved = false;
    state.diagramsKey = key;
    state.diagramsAt = Date.now();
    const figures = await Promise.all(graphs.map((graph) => drawGraph(graph, body.default, traffic)));
    const container = $("graphs");
    const kept = new Set(graphs.map((g) => g.id));
    for (const [graphId, url] of state.diagramUrls) {
      if (!kept.has(graphId)) {
        URL.revokeObjectURL(url);
        state.diagramUrls.delete(graphId);
      }
    }
    container.replaceChildren(...figures);
  }

  async function drawGraph(graph, defaultGraph, traffic) {
    const existing = $("graphs").querySelector(`figure[data-graph="${CSS.escape(graph.id)}"]`);
    const figure = existing || el("figure", { class: "graph", "data-graph": graph.id });
    figure.setAttribute("data-version", graph.version);
    const about = [
      `version ${graph.version}`,
      graph.numbers && graph.numbers.length ? `numbers ${graph.numbers.join(", ")}` : null,
      defaultGraph === graph.id ? "the default graph" : null,
    ].filter(Boolean);
    const caption = el("figcaption", null, el("strong", null, graph.id), ` · ${about.join(" · ")}`);
    const warnings = (graph.warnings || []).map((warning) => el("li", null, warning));
    const parts = [caption];
    if (warnings.length) parts.push(el("ul", { class: "warnings", "aria-label": "Warnings" }, ...warnings));
    const path = `admin/graphs/${encodeURIComponent(graph.id)}/diagram.svg?traffic=${encodeURIComponent(traffic)}`;
    try {
      const svg = await (await request(path, "image/svg+xml")).blob();
      const url = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
      const what = { today: ", with today's traffic", all: ", with all its traffic", none: "" }[traffic] || "";
      const image = el("img", { class: "diagram", src: url, "data-graph": graph.id,
                                alt: `Diagram of graph ${graph.id}, version ${graph.version}${what}` });
      const frame = existing ? existing.querySelector(".diagram-frame") : null;
      const scroll = frame ? [frame.scrollLeft, frame.scrollTop] : [0, 0];
      const newFrame = el("div", { class: "diagram-frame", tabindex: "0", role: "group",
                                   "aria-label": `Diagram of ${graph.id}` }, image);
      parts.push(newFrame, el("a", { href: url, target: "_blank", rel: "noopener" }, "Open the diagram on its own"));
      image.addEventListener("load", () => newFrame.scrollTo(scroll[0], scroll[1]), { once: true });
      const old = state.diagramUrls.get(graph.id);
      state.diagramUrls.set(graph.id, url);
      if (old) setTimeout(() => URL.revokeObjectURL(old), 0);
    } catch (error) {
      if (error instanceof HttpError && (error.status === 401 || error.status === 403)) throw error;
      parts.push(el("p", { class: "message error" }, `The diagram could not be drawn: ${describe(error)}`));
    }
    figure.replaceChildren(...parts);
    return figure;
  }

  // --- refreshing, logging in and out -------------------------------------------------

  function loggedOut(error) {
    if (!(error instanceof HttpError)) return false;
    if (error.status === 401) {
      showLogin("That token was refused (401 Unauthorized). Check the service's IVR_ADMIN_TOKEN and try again.");
      return true;
    }
    if (error.status === 403) {
      showLogin("The admin API is off on this service (403): set IVR_ADMIN_TOKEN (16 characters or more) and restart it.");
      return true;
    }
    return false;
  }

  function onFailure(error) {
    if (!loggedOut(error)) showProblem([error]);
  }

  function showProblem(failures) {
    const problem = $("problem");
    const reasons = [...new Set(failures.map(describe))];
    problem.textContent = reasons.length ? `Part of the page could not be refreshed: ${reasons.join("; ")}.` : "";
    problem.hidden = reasons.length === 0;
  }

  async function refresh(forceDiagrams = false) {
    clearTimeout(state.timer);
    const generation = state.generation;
    try {
      if (document.hidden && !forceDiagrams) return;
      const results = await Promise.allSettled([
        loadCalls(), loadDetail(), loadQueues(), loadAgents(), loadErrors(), loadGraphs(forceDiagrams),
      ]);
      if (generation !== state.generation) return;
      const failures = results.filter((r) => r.status === "rejected").map((r) => r.reason);
      if (failures.some(loggedOut)) return;
      showProblem(failures);
      const now = new Date().toLocaleTimeString([], { hour12: false });
      $("status").textContent = failures.length
        ? `Last tried ${now}; retrying every ${REFRESH_MS / 1000} s`
        : `Updated ${now}; refreshes every ${REFRESH_MS / 1000} s`;
      $("status").dataset.updated = String(Date.now());
    } finally {
      if (generation === state.generation) state.timer = setTimeout(refresh, REFRESH_MS);
    }
  }

  function stop() {
    clearTimeout(state.timer);
    state.timer = null;
    state.generation += 1;
  }

  function start() {
    stop();
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("logout").hidden = false;
    $("refresh").hidden = false;
    $("status").textContent = "Loading…";
    state.diagramsKey = "";
    refresh(true);
  }

  function showLogin(message) {
    stop();
    sessionStorage.removeItem(TOKEN_KEY);
    closeDetail();
    for (const id of ["calls-table", "queues-table", "agents-table", "errors-table"]) {
      $(id).tBodies[0].replaceChildren();
    }
    $("graphs").replaceChildren();
    for (const url of state.diagramUrls.values()) URL.revokeObjectURL(url);
    state.diagramUrls.clear();
    $("dashboard").hidden = true;
    $("logout").hidden = true;
    $("refresh").hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.textContent = message || "";
    error.hidden = !message;
    $("status").textContent = "Not logged in.";
    $("token").value = "";
    $("login-submit").disabled = false;
    $("token").focus();
  }

  async function login(event) {
    event.preventDefault();
    const given = $("token").value.trim();
    if (!given) {
      showLogin("Enter the admin token.");
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, given);
    $("login-submit").disabled = true;
    $("status").textContent = "Checking the token…";
    try {
      await getJson("admin/graphs");
    } catch (error) {
      if (!loggedOut(error)) showLogin(`Could not log in: ${describe(error)}.`);
      return;
    }
    $("login-submit").disabled = false;
    start();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login-form").addEventListener("submit", login);
    $("logout").addEventListener("click", () => showLogin(""));
    $("refresh").addEventListener("click", () => refresh(true));
    $("call-detail-close").addEventListener("click", closeDetail);
    $("traffic").addEventListener("change", () => refresh(true));
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && sessionStorage.getItem(TOKEN_KEY)) refresh();
    });
    if (sessionStorage.getItem(TOKEN_KEY)) start();
    else showLogin("");
  });
})();
