// The page: routes (#/, #/c/ID, #/settings), the conversation list, one conversation
// followed live, the settings form, the login prompt and the "server unreachable" banner.

import {
  ApiError,
  Unauthorized,
  Unreachable,
  api,
  onReachability,
  serverInfo,
  sessionKey,
  setSessionKey,
} from "./api.js";
import { EventStream } from "./sse.js";
import { ageLabel, appendEvent, el, stateLabel } from "./render.js";

const POLL_MS = 3000;
const $ = (id) => document.getElementById(id);

const state = {
  keyRequired: false,
  conversations: [],
  current: null, // { id, stream, seen: Set<number>, info }
  pollTimer: null,
};

// --- reachability and login ---------------------------------------------------------------
onReachability((reachable) => {
  const banner = $("banner");
  if (reachable) {
    banner.hidden = true;
    return;
  }
  banner.textContent =
    `The convo server at ${window.location.origin} cannot be reached. ` +
    "Is it running? This page retries by itself.";
  banner.hidden = false;
});

let loginWaiters = [];

function askForKey(message) {
  const dialog = $("login");
  const error = $("login-error");
  error.hidden = !message;
  error.textContent = message || "";
  if (!dialog.open) dialog.showModal();
  $("login-key").focus();
  return new Promise((resolve) => loginWaiters.push(resolve));
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = $("login-key").value.trim();
  if (!key) return;
  setSessionKey(key);
  try {
    await api("GET", "/api/conversations?limit=1");
  } catch (err) {
    if (err instanceof Unauthorized) {
      setSessionKey(null);
      $("login-error").textContent = "That key was refused. Check it and try again.";
      $("login-error").hidden = false;
      return;
    }
  }
  $("login-key").value = "";
  $("login").close();
  $("logout").hidden = false;
  const waiters = loginWaiters;
  loginWaiters = [];
  for (const resolve of waiters) resolve();
});

$("login").addEventListener("cancel", (ev) => ev.preventDefault()); // the key is needed

$("logout").addEventListener("click", () => {
  setSessionKey(null);
  closeConversation();
  window.location.hash = "#/";
  askForKey("").then(refreshAll);
});

// Runs an API call; on a refused key asks for one and tries again. Unreachable and other
// errors are thrown to the caller.
async function call(method, path, body) {
  for (;;) {
    try {
      return await api(method, path, body);
    } catch (err) {
      if (!(err instanceof Unauthorized)) throw err;
      const hadKey = sessionKey() !== null;
      setSessionKey(null);
      await askForKey(hadKey ? "The saved key was refused: enter the current one." : "");
    }
  }
}

function showError(node, err) {
  node.textContent = err instanceof Unreachable ? "The server cannot be reached." : err.message;
  node.hidden = false;
}

// --- the conversation list -----------------------------------------------------------------
async function refreshList() {
  try {
    const page = await call("GET", "/api/conversations?limit=100");
    state.conversations = page.results || [];
    renderList();
  } catch (err) {
    if (!(err instanceof Unreachable)) console.warn("listing conversations failed:", err.message);
  }
}

function badge(text, kind) {
  return el("span", { className: `badge ${kind || ""}`.trim(), text });
}

function statusKind(status) {
  return { RUNNING: "running", STARTING: "starting", STOPPED: "stopped" }[status] || "";
}

function agentKind(agentState) {
  if (agentState === "error") return "failed";
  if (agentState === "finished") return "done";
  if (agentState === "running" || agentState === "loading") return "running";
  if (agentState && agentState.startsWith("awaiting")) return "waiting";
  return "";
}

function renderList() {
  const list = $("conversations");
  const currentId = state.current ? state.current.id : null;
  const items = state.conversations.map((c) => {
    const link = el(
      "a",
      { className: "conversation-link" },
      el("span", { className: "title", text: c.title }),
      el(
        "span",
        { className: "meta" },
        badge(c.status, statusKind(c.status)),
        badge(stateLabel(c.agent_state), agentKind(c.agent_state)),
        el("span", { className: "muted small", text: ageLabel(c.last_updated_at || c.created_at) }),
      ),
    );
    link.href = `#/c/${encodeURIComponent(c.conversation_id)}`;
    const item = el("li", {}, link);
    item.dataset.conversationId = c.conversation_id;
    if (c.conversation_id === currentId) item.className = "selected";
    return item;
  });
  list.replaceChildren(...items);
  $("no-conversations").hidden = items.length > 0;
  if (state.current) {
    const info = state.conversations.find((c) => c.conversation_id === state.current.id);
    if (info) showInfo(info);
  }
}

$("new-task").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const error = $("new-task-error");
  const task = $("task").value.trim();
  if (!task) return;
  error.hidden = true;
  const button = ev.target.querySelector("button");
  button.disabled = true;
  try {
    const created = await call("POST", "/api/conversations", { initial_user_msg: task });
    $("task").value = "";
    window.location.hash = `#/c/${encodeURIComponent(created.conversation_id)}`;
    refreshList();
  } catch (err) {
    if (err instanceof ApiError && err.body && err.body.msg_id === "CONFIGURATION$SETTINGS_NOT_FOUND") {
      error.textContent = "No model is configured yet: choose one under Settings first.";
      error.hidden = false;
    } else {
      showError(error, err);
    }
  } finally {
    button.disabled = false;
  }
});

// --- one conversation ----------------------------------------------------------------------
function closeConversation() {
  if (state.current) state.current.stream.close();
  state.current = null;
}

function openConversation(id) {
  if (state.current && state.current.id === id) return;
  closeConversation();
  $("events").replaceChildren();
  $("conversation-error").hidden = true;
  $("confirmation").hidden = true;
  $("conversation-title").textContent = "";
  const current = { id, seen: new Set(), info: null, stream: null };
  state.current = current;
  current.stream = new EventStream(id, {
    onEvent: (payload) => onEvent(current, payload),
    onConnection: (how) => {
      $("conversation-live").textContent =
        { connecting: "connecting…", live: "live", reconnecting: "reconnecting…" }[how] || "";
    },
    onUnauthorized: () => {
      setSessionKey(null);
      askForKey("The key was refused.").then(() => {
        if (state.current === current) {
          state.current = null;
          openConversation(id);
        }
      });
    },
    onGone: () => {
      if (state.current !== current) return;
      $("conversation-live").textContent = "";
      showError($("conversation-error"), new Error("This conversation does not exist (any more)."));
    },
  });
  const listed = state.conversations.find((c) => c.conversation_id === id);
  if (listed) showInfo(listed);
  refreshInfo();
  renderList();
}

async function refreshInfo() {
  const current = state.current;
  if (!current) return;
  try {
    const info = await call("GET", `/api/conversations/${encodeURIComponent(current.id)}`);
    if (state.current !== current || !info) return;
    showInfo(info);
    // the list shows the same conversation: keep it as fresh as the header
    const index = state.conversations.findIndex((c) => c.conversation_id === info.conversation_id);
    if (index >= 0) {
      state.conversations[index] = info;
      renderList();
    }
  } catch {
    // the banner or the stream says what is wrong
  }
}

function showInfo(info) {
  const current = state.current;
  if (!current || info.conversation_id !== current.id) return;
  current.info = info;
  $("conversation-title").textContent = info.title;
  const status = $("conversation-status");
  status.textContent = info.status;
  status.className = `badge ${statusKind(info.status)}`;
  showAgentState(info.agent_state);
  const stopped = info.status === "STOPPED";
  $("conversation-start").hidden = !stopped;
  $("conversation-stop").hidden = stopped;
}

function showAgentState(agentState) {
  const node = $("conversation-agent-state");
  node.textContent = stateLabel(agentState);
  node.className = `badge ${agentKind(agentState)}`;
  $("confirmation").hidden = agentState !== "awaiting_user_confirmation";
}

function onEvent(current, payload) {
  if (state.current !== current) return;
  if (payload.status_update) {
    if (payload.conversation_title) $("conversation-title").textContent = payload.conversation_title;
    if (payload.type === "error" && payload.message) {
      const list = $("events");
      list.append(el("li", { className: "event error-event" }, el("div", { className: "label", text: "Error" }), el("div", { className: "body", text: payload.message })));
    }
    return;
  }
  if (Number.isInteger(payload.id)) {
    if (current.seen.has(payload.id)) return;
    current.seen.add(payload.id);
  }
  if (payload.observation === "agent_state_changed" && payload.extras) {
    showAgentState(payload.extras.agent_state);
    refreshInfo();
  }
  const list = $("events");
  const follow = nearBottom(list);
  const node = appendEvent(list, payload);
  if (node && follow) node.scrollIntoView({ block: "end" });
}

// Whether the reader is at the end (of the list on a wide screen, of the page on a phone):
// then new events keep it there; someone reading further up is left where they are.
function nearBottom(list) {
  const inList = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
  const page = document.documentElement;
  const inPage = window.innerHeight + window.scrollY >= page.scrollHeight - 120;
  return inList && inPage;
}

async function conversationCommand(button, method, suffix, body) {
  const current = state.current;
  if (!current) return;
  button.disabled = true;
  $("conversation-error").hidden = true;
  try {
    await call(method, `/api/conversations/${encodeURIComponent(current.id)}${suffix}`, body);
    await refreshInfo();
    refreshList();
  } catch (err) {
    showError($("conversation-error"), err);
  } finally {
    button.disabled = false;
  }
}

$("conversation-start").addEventListener("click", (ev) =>
  conversationCommand(ev.currentTarget, "POST", "/start", {}),
);
$("conversation-stop").addEventListener("click", (ev) =>
  conversationCommand(ev.currentTarget, "POST", "/stop"),
);
$("conversation-delete").addEventListener("click", async (ev) => {
  const current = state.current;
  if (!current) return;
  if (!window.confirm("Delete this conversation and its workspace? This cannot be undone.")) return;
  const button = ev.currentTarget;
  button.disabled = true;
  try {
    await call("DELETE", `/api/conversations/${encodeURIComponent(current.id)}`);
    closeConversation();
    window.location.hash = "#/";
    refreshList();
  } catch (err) {
    showError($("conversation-error"), err);
  } finally {
    button.disabled = false;
  }
});

function sendUserAction(args, action = "message") {
  const current = state.current;
  return call("POST", `/api/conversations/${encodeURIComponent(current.id)}/events`, { action, args });
}

$("send-message").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const content = $("message").value.trim();
  if (!content || !state.current) return;
  const button = ev.target.querySelector("button");
  button.disabled = true;
  try {
    await sendUserAction({ content });
    $("message").value = "";
    refreshInfo();
  } catch (err) {
    showError($("conversation-error"), err);
  } finally {
    button.disabled = false;
  }
});

for (const [id, decision] of [["confirm-yes", "user_confirmed"], ["confirm-no", "user_rejected"]]) {
  $(id).addEventListener("click", async () => {
    try {
      await sendUserAction({ agent_state: decision }, "change_agent_state");
      $("confirmation").hidden = true;
    } catch (err) {
      showError($("conversation-error"), err);
    }
  });
}

// Ctrl+Enter (or Cmd+Enter) sends a message or starts a task from its text box.
for (const [box, form] of [["message", "send-message"], ["task", "new-task"]]) {
  $(box).addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) {
      ev.preventDefault();
      $(form).requestSubmit();
    }
  });
}

// --- settings ------------------------------------------------------------------------------
async function loadSettings() {
  const form = $("settings-form");
  $("settings-result").textContent = "";
  try {
    const settings = await call("GET", "/api/settings");
    form.llm_model.value = settings.llm_model || "";
    form.llm_base_url.value = settings.llm_base_url || "";
    form.llm_api_key.value = "";
    form.llm_api_key.placeholder = settings.llm_api_key_set
      ? "a key is saved: type to replace it"
      : "no key saved";
    form.clear_llm_api_key.checked = false;
    form.max_iterations.value = settings.max_iterations || "";
    form.confirmation_mode.checked = Boolean(settings.confirmation_mode);
  } catch (err) {
    showError($("settings-result"), err);
  }
}

$("settings-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = ev.target;
  const result = $("settings-result");
  result.className = "";
  const body = {
    llm_model: form.llm_model.value.trim(),
    llm_base_url: form.llm_base_url.value.trim(),
    confirmation_mode: form.confirmation_mode.checked,
  };
  const steps = Number.parseInt(form.max_iterations.value, 10);
  if (Number.isInteger(steps) && steps > 0) body.max_iterations = steps;
  const key = form.llm_api_key.value;
  if (form.clear_llm_api_key.checked) body.llm_api_key = "";
  else if (key) body.llm_api_key = key; // left empty: the saved key stays
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    await call("POST", "/api/settings", body);
    await loadSettings();
    result.textContent = "Saved. Running conversations use it from their next LLM call.";
  } catch (err) {
    showError(result, err);
    result.className = "error";
  } finally {
    button.disabled = false;
  }
});

// --- routing and start-up ------------------------------------------------------------------
function route() {
  const hash = window.location.hash || "#/";
  const match = hash.match(/^#\/c\/([A-Za-z0-9_-]{1,64})$/);
  const view = match ? "conversation" : hash === "#/settings" ? "settings" : "list";
  document.body.className = `view-${view}`;
  $("welcome").hidden = view !== "list";
  $("conversation").hidden = view !== "conversation";
  $("settings").hidden = view !== "settings";
  if (view === "conversation") openConversation(match[1]);
  else closeConversation();
  if (view === "settings") loadSettings();
  renderList();
}

async function refreshAll() {
  await refreshList();
  if (state.current) refreshInfo();
}

function poll() {
  clearTimeout(state.pollTimer);
  state.pollTimer = setTimeout(async () => {
    if (!document.hidden) await refreshAll();
    poll();
  }, POLL_MS);
}

async function start() {
  for (;;) {
    try {
      const info = await serverInfo();
      state.keyRequired = Boolean(info.session_key_required);
      break;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
  if (state.keyRequired) {
    $("logout").hidden = sessionKey() === null;
    if (sessionKey() === null) await askForKey("");
  }
  window.addEventListener("hashchange", route);
  route();
  await refreshList();
  poll();
}

start();
