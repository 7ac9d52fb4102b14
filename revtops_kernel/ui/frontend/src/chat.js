// The chat widget's front end (anywidget). The kernel keeps the state and the agent; this view
// applies small messages to the same state (reduce) and draws it. Message shapes are documented
// in revtops_kernel/ui/protocol.py, which applies the same reducer on the Python side.
import { makeRenderer } from "./markdown.js";
import { bytes, loadPlotly, themed } from "./plotly.js";
import { renderTable } from "./table.js";

const h = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
};

// --- the state and its reducer (mirrors protocol.ChatState.apply) -----------------------------
export function emptyState() {
  return { conversations: [], current: null, turns: [], running: false, suggestions: [] };
}

export function reduce(state, msg) {
  if (typeof msg === "string") {
    const turn = state.turns[state.turns.length - 1];
    if (!turn) return state;
    const last = turn.items[turn.items.length - 1];
    if (last && last.k === "text") last.md += msg;
    else turn.items.push({ k: "text", md: msg });
    return state;
  }
  switch (msg.t) {
    case "state":
      return { ...emptyState(), ...msg, t: undefined };
    case "list":
      state.conversations = msg.conversations;
      state.current = msg.current;
      return state;
    case "turn":
      state.turns.push({ q: msg.q, at: msg.at, items: [], stop: null, verified: false });
      state.running = true;
      return state;
    case "item":
      state.turns[state.turns.length - 1]?.items.push(msg.item);
      return state;
    case "tool_end": {
      const turn = state.turns[state.turns.length - 1];
      const item = turn?.items.find((it) => it.k === "tool" && it.id === msg.id);
      if (item) Object.assign(item, msg, { t: undefined, k: "tool" });
      else turn?.items.push({ ...msg, t: undefined, k: "tool" });
      return state;
    }
    case "done": {
      const turn = state.turns[state.turns.length - 1];
      if (turn) Object.assign(turn, { stop: msg.stop, verified: msg.verified });
      state.running = false;
      if (msg.current !== undefined) state.current = msg.current;
      return state;
    }
    default:
      return state;
  }
}

// --- the page's shell -------------------------------------------------------------------------
// The web app's page (extensions/revtops_server/templates/index.html.j2) draws a question box
// before any script loads. The first chat view takes it over once it is in the page: what was
// typed, the caret and the focus move into the view's box, and a question sent from the shell
// goes out now (after the view's hello: the kernel answers the hello first).
export function takeOverShell(input, ask) {
  const shell = globalThis.revtopsShell;
  if (!shell || shell.taken || typeof shell.take !== "function") return false;
  const taken = shell.take();
  if (taken.text) {
    input.value = taken.text;
    input.setSelectionRange(taken.start ?? taken.text.length, taken.end ?? taken.text.length);
  }
  if (taken.focused) input.focus();
  if (taken.pending) ask(taken.pending);
  return true;
}

// --- the view --------------------------------------------------------------------------------
function render({ model, el }) {
  const markdown = makeRenderer(model.get("policy"));
  const timezone = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  let state = emptyState();
  const when = new Intl.DateTimeFormat(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZone: timezone,
  });
  const stamp = (iso) => (iso ? when.format(new Date(iso)) : "");

  // layout: conversations | thread + composer
  const list = h("ul", { class: "rt-list", role: "listbox", "aria-label": "Conversations" });
  const newChat = h("button", { class: "rt-new", type: "button" }, "+ New chat");
  const sidebar = h("nav", { class: "rt-conversations" }, newChat, list);
  const title = h("span", { class: "rt-title" });
  const rename = h("button", { class: "rt-rename", type: "button", title: "Rename" }, "Rename");
  const remove = h("button", { class: "rt-delete", type: "button", title: "Delete" }, "Delete");
  const pdf = h("button", { class: "rt-export-pdf", type: "button" }, "PDF");
  const notebook = h("button", { class: "rt-export-ipynb", type: "button" }, "Notebook");
  const bar = h("div", { class: "rt-bar" }, title, h("span", { class: "rt-actions" }, rename, remove, pdf, notebook));
  const messages = h("div", { class: "rt-messages" });
  const scroller = h("div", { class: "rt-scroller" }, messages);
  const status = h("div", { class: "rt-status", role: "status" });
  const input = h("textarea", {
    class: "rt-input", rows: 2, placeholder: "Ask about your pipeline… (Enter sends, Shift+Enter new line)",
    "aria-label": "Question",
  });
  const send = h("button", { class: "rt-send", type: "button" }, "Send");
  const stop = h("button", { class: "rt-stop", type: "button" }, "Stop");
  const composer = h("div", { class: "rt-composer" }, input, send, stop);
  // "answer" (%%ask): one answer in a cell's output, with Stop while it runs; no list, no box
  const answerMode = model.get("mode") === "answer";
  const main = answerMode
    ? h("section", { class: "rt-main" }, scroller, status, h("div", { class: "rt-composer" }, stop))
    : h("section", { class: "rt-main" }, bar, scroller, status, composer);
  const root = h("div", { class: answerMode ? "revtops-chat rt-answer-mode" : "revtops-chat" },
    answerMode ? null : sidebar, main);
  el.append(root);

  // follow the stream unless the user scrolled up
  let follow = true;
  scroller.addEventListener("scroll", () => {
    follow = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  });
  const keepInView = () => { if (follow) scroller.scrollTop = scroller.scrollHeight; };

  const ask = (question) => {
    const q = (question ?? input.value).trim();
    if (!q || state.running) return;
    if (question === undefined) input.value = "";  // a suggestion leaves the typed text alone
    follow = true;
    model.send({ t: "ask", q });
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ask();
    } else if (event.key === "Escape" && state.running) {
      model.send({ t: "stop" });
    }
  });
  root.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && state.running) model.send({ t: "stop" });
  });
  send.addEventListener("click", () => ask());
  stop.addEventListener("click", () => { model.send({ t: "stop" }); status.textContent = "Stopping…"; });
  newChat.addEventListener("click", () => model.send({ t: "new" }));
  remove.addEventListener("click", () => {
    if (state.current) model.send({ t: "delete", id: state.current });
  });
  rename.addEventListener("click", () => {
    if (!state.current) return;
    const field = h("input", { class: "rt-title-input", value: title.textContent });
    const done = (save) => {
      if (save && field.value.trim()) model.send({ t: "rename", id: state.current, title: field.value.trim() });
      field.replaceWith(title);
    };
    field.addEventListener("keydown", (e) => {
      if (e.key === "Enter") done(true);
      if (e.key === "Escape") done(false);
    });
    field.addEventListener("blur", () => done(true));
    title.replaceWith(field);
    field.focus();
    field.select();
  });
  pdf.addEventListener("click", () => model.send({ t: "export", kind: "pdf" }));
  notebook.addEventListener("click", () => model.send({ t: "export", kind: "ipynb" }));

  // --- drawing ---
  const drawList = () => {
    list.replaceChildren(...state.conversations.map((c) => h("li", {
      class: c.id === state.current ? "rt-conv rt-current" : "rt-conv",
      role: "option", "aria-selected": c.id === state.current ? "true" : "false", title: c.title,
      onclick: () => { if (!state.running && c.id !== state.current) model.send({ t: "open", id: c.id }); },
    }, h("span", { class: "rt-conv-title" }, c.title || "Untitled"), h("span", { class: "rt-when" }, stamp(c.at)))));
    const current = state.conversations.find((c) => c.id === state.current);
    title.textContent = current ? current.title || "Untitled" : "New conversation";
    for (const b of [rename, remove, pdf, notebook]) b.disabled = !state.current || state.running;
  };

  const drawControls = () => {
    root.classList.toggle("rt-running", state.running);
    send.disabled = state.running;
    stop.disabled = !state.running;
    newChat.disabled = state.running;
    if (state.running) status.textContent = "Answering…";
    else if (status.textContent === "Answering…" || status.textContent === "Stopping…") status.textContent = "";
  };

  const copyButton = (label, text) => h("button", {
    class: "rt-copy", type: "button", title: "Copy",
    onclick: async (e) => {
      e.preventDefault();
      e.stopPropagation();
      try { await navigator.clipboard.writeText(text()); e.target.textContent = "Copied"; }
      catch { e.target.textContent = "Copy failed"; }
      setTimeout(() => { e.target.textContent = label; }, 1500);
    },
  }, label);

  const drawChart = (figure) => {
    const box = h("div", { class: "rt-chart" }, h("div", { class: "rt-chart-loading" }, "Loading chart…"));
    loadPlotly(model).then((Plotly) => {
      const div = h("div", { class: "rt-plot" });
      box.replaceChildren(div);
      Plotly.newPlot(div, figure.data || [], themed(figure.layout || {}, el), {
        displaylogo: false, responsive: true,
      }).then(keepInView);
    }).catch((error) => { box.textContent = `The chart could not be drawn: ${error}`; });
    return box;
  };

  const drawItem = (item) => {
    switch (item.k) {
      case "text": {
        const node = h("div", { class: "rt-text" });
        node.append(markdown(item.md));
        return node;
      }
      case "tool": {
        const sql = item.sql || "";
        const running = item.ok === undefined || item.ok === null;
        const label = running ? (sql ? "Querying" : `Running ${item.name}`)
          : `${item.ok ? "✓" : "✗"} ${item.name}: ${item.summary || ""}`;
        const body = sql ? h("div", { class: "rt-sql" },
          h("div", { class: "rt-sql-bar" }, copyButton("Copy SQL", () => sql)),
          h("pre", {}, h("code", {}, sql)),
          item.ran && item.ran !== sql ? h("details", { class: "rt-ran" },
            h("summary", {}, "as run (scoped to the organization)"), h("pre", {}, item.ran)) : null)
          : h("pre", {}, JSON.stringify(item.input || {}, null, 2));
        const card = h("details", {
          class: `rt-tool ${running ? "rt-running" : item.ok ? "rt-done" : "rt-failed"}`,
          "data-tool-id": item.id,
        }, h("summary", {}, label, item.verified ? badge() : null), body);
        return h("div", { class: "rt-tool-block" }, card, item.table ? renderTable(item.table, h, copyButton) : null);
      }
      case "artifact": {
        const parts = [];
        if (!(item.figs || []).length || item.verified) {
          parts.push(h("h4", { class: "rt-artifact-title" }, item.title, item.verified ? badge() : null));
        }
        for (const figure of item.figs || []) parts.push(drawChart(figure));
        if (item.table && !(item.figs || []).length) parts.push(renderTable(item.table, h, copyButton));
        if (item.md) parts.push(drawItem({ k: "text", md: item.md }));
        parts.push(h("div", { class: "rt-artifact-actions" }, h("button", {
          class: "rt-artifact-pdf", type: "button", title: `Download “${item.title}” as PDF`,
          onclick: () => model.send({ t: "artifact_pdf", id: item.id }),
        }, "Download PDF")));
        return h("div", { class: "rt-artifact", "data-artifact-id": item.id }, parts);
      }
      case "verified":
        return h("div", { class: "rt-verified-answer" },
          h("h4", { class: "rt-artifact-title" }, item.title, badge()),
          item.note ? h("div", { class: "rt-notice" }, item.note) : null,
          h("details", { class: "rt-tool rt-done" }, h("summary", {}, "SQL of the verified query"),
            h("div", { class: "rt-sql" }, h("div", { class: "rt-sql-bar" }, copyButton("Copy SQL", () => item.sql)),
              h("pre", {}, h("code", {}, item.sql)))),
          item.chart ? drawChart(item.chart) : null,
          item.table ? renderTable(item.table, h, copyButton) : null);
      case "suggest":
        return h("div", { class: "rt-suggest" },
          h("div", { class: "rt-notice" }, item.msg),
          h("div", { class: "rt-suggestions" }, (item.questions || []).map((s) => h("button", {
            class: "rt-suggestion", type: "button", title: s.title, onclick: () => ask(s.q),
          }, s.q))));
      case "error":
        return h("div", { class: item.kind === "cancelled" ? "rt-error rt-cancelled" : "rt-error" }, item.msg);
      case "notice":
        return h("div", { class: "rt-notice" }, item.msg);
      default:
        return h("div");
    }
  };

  const badge = () => h("span", { class: "rt-badge rt-verified", title: "Answered by a verified query" }, "✔ verified");

  const endMarks = (turn) => [
    turn.stop === "cancelled" ? h("div", { class: "rt-stopped" }, "Stopped: the answer above is incomplete.") : null,
    turn.verified && turn.stop === "end_turn"
      ? h("div", { class: "rt-verified-line" }, badge(), " this answer comes from verified queries") : null,
  ];

  const drawTurn = (turn) => {
    const answer = h("div", { class: "rt-answer" }, turn.items.map(drawItem), endMarks(turn));
    return h("div", { class: "rt-turn" },
      h("div", { class: "rt-user" }, turn.q),
      h("div", { class: "rt-at" }, stamp(turn.at)),
      answer);
  };

  const notice = () => {
    const text = model.get("notice");
    if (!text) return null;
    const node = h("div", { class: "rt-notice rt-setup" });
    node.append(markdown(text));
    return node;
  };

  const drawEmpty = () => answerMode ? h("div", { class: "rt-empty" }, "Asking…") : h("div", { class: "rt-empty" },
    h("p", {}, "Ask a question about your pipeline, deals, accounts or activity."),
    notice(),
    state.suggestions.length ? h("p", { class: "rt-hint" }, "Answered from verified queries:") : null,
    h("div", { class: "rt-suggestions" }, state.suggestions.map((q) => h("button", {
      class: "rt-suggestion", type: "button", onclick: () => ask(q),
    }, q))));

  const drawAll = () => {
    messages.replaceChildren(...(state.turns.length ? state.turns.map(drawTurn) : [drawEmpty()]));
    drawList();
    drawControls();
    keepInView();
  };

  // the live answer's last text node, re-rendered as deltas arrive
  const lastAnswer = () => messages.lastElementChild?.querySelector(":scope > .rt-answer");

  model.on("msg:custom", (msg, buffers) => {
    if (msg && msg.t === "plotly") return;
    if (msg && msg.t === "file") { download(msg, buffers[0]); status.textContent = ""; return; }
    if (msg && msg.t === "status") { status.textContent = msg.msg; status.classList.toggle("rt-status-error", !!msg.error); return; }
    state = reduce(state, msg);
    const turn = state.turns[state.turns.length - 1];
    const answer = lastAnswer();
    if (typeof msg === "string" && turn && answer) {
      const item = turn.items[turn.items.length - 1];
      let node = answer.lastElementChild;
      if (!node || !node.classList.contains("rt-text") || answer.childElementCount !== turn.items.length) {
        node = h("div", { class: "rt-text" });
        answer.append(node);
      }
      node.replaceChildren(markdown(item.md));
      keepInView();
    } else if (msg && msg.t === "item" && answer) {
      answer.append(drawItem(msg.item));
      keepInView();
    } else if (msg && msg.t === "tool_end" && answer) {
      const card = answer.querySelector(`.rt-tool[data-tool-id="${CSS.escape(msg.id)}"]`);
      const item = turn.items.find((it) => it.k === "tool" && it.id === msg.id);
      if (card && item) card.parentElement.replaceWith(drawItem(item));
      else answer.append(drawItem(item || { ...msg, k: "tool" }));
      keepInView();
    } else if (msg && msg.t === "list") {
      drawList();
    } else if (msg && msg.t === "turn") {
      if (state.turns.length === 1) messages.replaceChildren();
      messages.append(drawTurn(turn));
      drawList();
      drawControls();
      follow = true;
      keepInView();
    } else if (msg && msg.t === "done" && answer) {
      answer.append(...endMarks(turn).filter(Boolean));
      drawList();
      drawControls();
      keepInView();
    } else {
      if (msg && msg.t === "state") {
        status.textContent = msg.status || "";
        status.classList.toggle("rt-status-error", !!msg.status);
      }
      drawAll();
    }
  });

  const download = (msg, buffer) => {
    const url = URL.createObjectURL(new Blob([bytes(buffer)], { type: msg.mime }));
    const link = h("a", { href: url, download: msg.name, style: "display:none" });
    el.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(url); link.remove(); }, 10_000);
  };

  // a finished %%ask answer travels in the widget's state too: a notebook saved with its widget
  // state shows it without a kernel
  model.on("change:notice", () => { if (!state.turns.length) drawAll(); });
  const saved = model.get("saved");
  if (saved && Array.isArray(saved.turns)) state = reduce(state, { ...saved, t: "state" });
  drawAll();
  // a (re)connecting view asks for the whole state, and tells the kernel the browser's zone
  model.send({ t: "hello", tz: timezone });
  if (!answerMode) requestAnimationFrame(() => takeOverShell(input, ask));
  return () => { root.remove(); };
}

export default { render };
