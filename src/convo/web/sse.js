// Follows a conversation's events over Server-Sent Events, read with fetch rather than
// EventSource: EventSource cannot send the session key header. Resumable by event id: after
// a dropped connection (or the server's "resume" event) it reconnects with Last-Event-ID set
// to the last id it delivered, so no event is lost or delivered twice.

import { Unauthorized, reportReachable, requestHeaders } from "./api.js";

const MAX_BACKOFF_MS = 10000;

export class EventStream {
  // handlers: onEvent(payload), onConnection("connecting" | "live" | "reconnecting"),
  // onUnauthorized(), onGone()
  constructor(conversationId, handlers) {
    this.url = `/api/conversations/${encodeURIComponent(conversationId)}/events/stream`;
    this.handlers = handlers;
    this.lastId = -1;
    this.abort = new AbortController();
    this.closed = false;
    this.run();
  }

  close() {
    this.closed = true;
    this.abort.abort();
  }

  async run() {
    let backoff = 500;
    this.handlers.onConnection("connecting");
    while (!this.closed) {
      try {
        await this.connect();
        backoff = 500; // a stream that ended normally: reconnect at once
      } catch (err) {
        if (this.closed) return;
        if (err instanceof Unauthorized) {
          this.handlers.onUnauthorized();
          return;
        }
        if (err instanceof Gone) {
          this.handlers.onGone();
          return;
        }
        this.handlers.onConnection("reconnecting");
        await sleep(backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      }
    }
  }

  async connect() {
    const headers = requestHeaders({ Accept: "text/event-stream" });
    if (this.lastId >= 0) headers["Last-Event-ID"] = String(this.lastId);
    let response;
    try {
      response = await fetch(this.url, {
        headers,
        cache: "no-store",
        credentials: "omit",
        signal: this.abort.signal,
      });
    } catch (err) {
      if (!this.closed) reportReachable(false);
      throw err;
    }
    reportReachable(true);
    if (response.status === 401) throw new Unauthorized();
    if (response.status === 404) throw new Gone();
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    this.handlers.onConnection("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (this.dispatch(parseBlock(block)) === "resume") return;
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    throw new Error("the event stream ended");
  }

  dispatch(message) {
    if (message === null) return null; // a comment (keep-alive)
    if (message.event === "resume") return "resume"; // fell behind: reconnect from lastId
    let payload;
    try {
      payload = JSON.parse(message.data);
    } catch {
      return null;
    }
    if (message.id !== null) {
      const id = Number(message.id);
      if (Number.isInteger(id)) {
        if (id <= this.lastId) return null; // already delivered
        this.lastId = id;
      }
    }
    this.handlers.onEvent(payload);
    return null;
  }
}

class Gone extends Error {}

function parseBlock(block) {
  let event = "message";
  let id = null;
  const data = [];
  let any = false;
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    any = true;
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  return any ? { event, id, data: data.join("\n") } : null;
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
