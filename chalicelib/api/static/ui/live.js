// Live updates: one WebSocket for the whole page (docs/realtime.md).
//
// Asks GET /v1/realtime where to connect, connects with ?token=<key>, subscribes to "*", and
// re-dispatches each event. On a drop it reconnects with exponential backoff and subscribes
// with `since` = the time of the last event seen, so nothing is lost; the server replays what
// changed meanwhile (events may come twice: views key runs by data.id, jobs by job_id).

import { ApiError, get } from "./api.js";

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
// API Gateway closes a connection idle for 10 minutes.
const PING_EVERY_MS = 4 * 60 * 1000;

/**
 * Events: "event" (detail: the server's event), "state" (detail: {state, message}),
 * "resync" (the replay was truncated: views should reload what they show).
 * States: connecting, live, reconnecting, unavailable, off.
 */
export class Live extends EventTarget {
  constructor(getKey) {
    super();
    this.getKey = getKey;
    this.socket = null;
    this.state = "off";
    this.lastTime = null; // the text of the latest `time` seen
    this.lastTimeMs = 0;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.running = false;
  }

  get connected() {
    return this.state === "live";
  }

  start() {
    if (this.running) return;
    this.running = true;
    this.connect();
  }

  stop() {
    this.running = false;
    window.clearTimeout(this.retryTimer);
    window.clearInterval(this.pingTimer);
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      socket.close(1000, "signed out");
    }
    this.lastTime = null;
    this.lastTimeMs = 0;
    this.attempt = 0;
    this.setState("off");
  }

  setState(state, message = "") {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, message } }));
  }

  async connect() {
    if (!this.running) return;
    this.setState(this.attempt === 0 && !this.lastTime ? "connecting" : "reconnecting");
    let url;
    try {
      ({ url } = await get("/realtime"));
    } catch (error) {
      if (!this.running) return;
      if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
        this.setState("unavailable", error.message);
        return; // the key cannot listen; app.js handles a 401 by signing out
      }
      this.retry(error instanceof ApiError ? error.message : String(error));
      return;
    }
    if (!this.running) return;
    const key = this.getKey();
    if (!key) return;
    const target = new URL(url);
    target.searchParams.set("token", key);
    let socket;
    try {
      socket = new WebSocket(target.toString());
    } catch (error) {
      this.retry(String(error));
      return;
    }
    this.socket = socket;
    socket.addEventListener("open", () => {
      const message = { action: "subscribe", jobs: "*" };
      if (this.lastTime) message.since = this.lastTime;
      socket.send(JSON.stringify(message));
    });
    socket.addEventListener("message", (message) => this.receive(message.data));
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return; // replaced or stopped
      this.socket = null;
      window.clearInterval(this.pingTimer);
      this.retry("The live connection closed.");
    });
    // An error is always followed by close, which reconnects.
  }

  retry(message) {
    if (!this.running) return;
    const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    this.attempt += 1;
    this.setState("reconnecting", `${message} Retrying in ${Math.ceil(delay / 1000)} s.`);
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => this.connect(), delay);
  }

  receive(raw) {
    let event;
    try {
      event = JSON.parse(raw);
    } catch {
      return;
    }
    if (!event || typeof event !== "object") return;
    switch (event.type) {
      case "subscribed":
        this.attempt = 0;
        window.clearInterval(this.pingTimer);
        this.pingTimer = window.setInterval(() => this.send({ action: "ping" }), PING_EVERY_MS);
        this.setState("live");
        return;
      case "pong":
        return;
      case "error":
        this.dispatchEvent(new CustomEvent("state", { detail: { state: this.state, message: event.detail } }));
        return;
      case "replay.done":
        if (event.truncated) this.dispatchEvent(new CustomEvent("resync"));
        return;
      default:
        break;
    }
    if (event.time) {
      const ms = Date.parse(event.time);
      if (!Number.isNaN(ms) && ms >= this.lastTimeMs) {
        this.lastTimeMs = ms;
        this.lastTime = event.time;
      }
    }
    this.dispatchEvent(new CustomEvent("event", { detail: event }));
  }

  send(message) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(message));
  }

  /** Listen to events (optionally of one job); returns the function that stops listening. */
  on(handler, { jobId = null } = {}) {
    const listener = (e) => {
      if (jobId === null || e.detail.job_id === jobId) handler(e.detail);
    };
    this.addEventListener("event", listener);
    return () => this.removeEventListener("event", listener);
  }
}
