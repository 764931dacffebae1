// Events as DOM nodes. Everything an event carries was written by the agent or its commands
// (an adversary): it only ever becomes text (textContent), never markup, a URL or a style.

export function el(tag, options = {}, ...children) {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.text !== undefined) node.textContent = String(options.text);
  if (options.title) node.title = String(options.title);
  for (const child of children) if (child) node.append(child);
  return node;
}

const HIDDEN_ACTIONS = new Set(["system", "change_agent_state", "recall"]);
const HIDDEN_OBSERVATIONS = new Set(["agent_state_changed", "think", "null", "recall"]);

const STATE_LABELS = {
  loading: "starting",
  running: "working",
  awaiting_user_input: "waiting for you",
  awaiting_user_confirmation: "waiting for your confirmation",
  finished: "finished",
  error: "error",
  stopped: "stopped",
  paused: "paused",
  rejected: "rejected",
  rate_limited: "rate limited",
  user_confirmed: "confirmed",
  user_rejected: "rejected by you",
};

export function stateLabel(state) {
  if (!state) return "not started";
  return STATE_LABELS[state] || String(state).replaceAll("_", " ");
}

export function ageLabel(iso) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
  if (seconds < 60) return "just now";
  const minutes = Math.round(seconds / 60);
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} h ago`;
  return `${Math.round(hours / 24)} days ago`;
}

function text(value) {
  return typeof value === "string" ? value : value == null ? "" : String(value);
}

function bubble(kind, label, body) {
  return el(
    "li",
    { className: `event message ${kind}` },
    el("div", { className: "who", text: label }),
    el("div", { className: "body", text: body }),
  );
}

function step(kind, label, ...children) {
  return el("li", { className: `event step ${kind}` }, el("div", { className: "label", text: label }), ...children);
}

function thoughtOf(event) {
  const thought = text(event.args && event.args.thought).trim();
  return thought ? el("div", { className: "thought", text: thought }) : null;
}

function diffView(diff) {
  const pre = el("pre", { className: "diff" });
  for (const line of text(diff).replace(/\n+$/, "").split("\n")) {
    let cls = "ctx";
    if (line.startsWith("+++") || line.startsWith("---")) cls = "file";
    else if (line.startsWith("@@")) cls = "hunk";
    else if (line.startsWith("+")) cls = "add";
    else if (line.startsWith("-")) cls = "del";
    pre.append(el("span", { className: cls, text: line + "\n" }));
  }
  return pre;
}

function renderAction(event) {
  const args = event.args || {};
  switch (event.action) {
    case "message":
      return event.source === "user"
        ? bubble("user", "You", args.content)
        : bubble("agent", "Agent", args.content);
    case "run": {
      const node = step("run", "Command", thoughtOf(event), el("pre", { className: "command", text: `$ ${text(args.command)}` }));
      return node;
    }
    case "edit":
      return step("edit", `Edit ${text(args.path)}`, thoughtOf(event));
    case "read":
      return step("read", `Read ${text(args.path)}`, thoughtOf(event));
    case "think":
      return step("think", "Thinking", el("div", { className: "thought", text: args.thought }));
    case "call_tool_mcp":
      return step("run", `Tool ${text(args.name)}`, thoughtOf(event), el("pre", { className: "command", text: JSON.stringify(args.arguments || {}) }));
    case "finish":
      return bubble("agent finish", "Agent · finished", text(args.final_thought) || text(args.thought) || "Done.");
    case "condensation":
      return step("note", "Older steps were summarised to fit the model's context");
    default:
      return step("note", text(event.message) || `Action: ${text(event.action)}`);
  }
}

// An observation: appended into the action it answers when that is on the page.
function renderObservation(event) {
  const extras = event.extras || {};
  switch (event.observation) {
    case "run": {
      const code = extras.metadata ? extras.metadata.exit_code : undefined;
      const wrap = el("div", { className: "output" });
      wrap.append(el("pre", { className: "stdout", text: text(event.content) || "(no output)" }));
      if (code !== undefined && code !== null) {
        wrap.append(el("div", { className: code === 0 ? "exit ok" : "exit failed", text: `exit code ${code}` }));
      }
      return wrap;
    }
    case "edit":
      return text(extras.diff) ? diffView(extras.diff) : el("div", { className: "muted", text: event.content });
    case "mcp":
      return el("div", { className: "output" }, el("pre", { className: "stdout", text: text(event.content) || "(no output)" }));
    case "read": {
      const details = el("details", { className: "output" }, el("summary", { text: "file content" }));
      details.append(el("pre", { text: event.content }));
      return details;
    }
    case "error":
      return el("li", { className: "event error-event" }, el("div", { className: "label", text: "Error" }), el("div", { className: "body", text: event.content || event.message }));
    case "user_rejected":
      return el("div", { className: "muted", text: "You rejected this step." });
    default:
      return el("div", { className: "muted", text: event.message || event.content || "" });
  }
}

const CONFIRMATION_LABELS = {
  awaiting_confirmation: "waiting for your confirmation",
  confirmed: "allowed",
  rejected: "rejected",
};

function toolCallId(event) {
  const meta = event.tool_call_metadata;
  return meta && typeof meta.tool_call_id === "string" ? meta.tool_call_id : "";
}

// In confirmation mode an action is stored twice: waiting, then allowed or rejected. The
// decision updates the waiting action's node (found by its tool call) instead of adding one.
function decidedAction(list, event, decision) {
  const callId = toolCallId(event);
  if (!callId) return null;
  const node = [...list.children].find(
    (li) => li.dataset.awaiting === "true" && li.dataset.toolCall === callId,
  );
  if (!node) return null;
  delete node.dataset.awaiting;
  node.dataset.eventId = String(event.id); // its result answers this copy
  const label = node.querySelector(".label");
  if (label) label.textContent = `${label.dataset.base} (${CONFIRMATION_LABELS[decision]})`;
  return node;
}

// Renders one stored event into the list; returns the node added or updated, or null.
export function appendEvent(list, event) {
  if (event.action) {
    if (HIDDEN_ACTIONS.has(event.action)) return null;
    const decision = event.args && event.args.confirmation_state;
    if (decision === "confirmed" || decision === "rejected") {
      const decided = decidedAction(list, event, decision);
      if (decided) return decided;
    }
    const node = renderAction(event);
    node.dataset.eventId = String(event.id);
    const label = node.querySelector(".label");
    if (label) {
      label.dataset.base = label.textContent;
      // every executed action says "confirmed" (OpenHands' default): only a waiting or
      // refused one is labelled
      if (decision === "awaiting_confirmation" || decision === "rejected") {
        label.textContent = `${label.textContent} (${CONFIRMATION_LABELS[decision]})`;
      }
    }
    if (decision === "awaiting_confirmation") node.dataset.awaiting = "true";
    if (toolCallId(event)) node.dataset.toolCall = toolCallId(event);
    list.append(node);
    return node;
  }
  if (event.observation) {
    if (HIDDEN_OBSERVATIONS.has(event.observation)) return null;
    const rendered = renderObservation(event);
    if (rendered.tagName === "LI") {
      list.append(rendered);
      return rendered;
    }
    const cause = Number.isInteger(event.cause)
      ? list.querySelector(`li[data-event-id="${event.cause}"]`)
      : null;
    if (cause) {
      cause.append(rendered);
      return cause;
    }
    const node = el("li", { className: "event step" }, rendered);
    list.append(node);
    return node;
  }
  return null;
}
