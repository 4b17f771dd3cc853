// herald-client: a browser client for Herald, the server-push hub.
//
// It wraps EventSource with the rules a page must follow (Herald's docs/contract.md):
// resume from the last event id, position markers included, across reloads; report
// `gap`; reconnect with capped, jittered backoff once EventSource gives up (a proxy's
// 502/503/504 during a deploy, a network change) and stop for good on 401/403/204;
// refresh the subscriber token on `herald.token-expired` (or a 401) without looping;
// end a task stream cleanly at `done`. No dependencies; every browser API it uses
// can be handed in (tests run it in Node).

const POSITION_EVENT = "herald.position";
const GAP_EVENT = "gap";
const TOKEN_EXPIRED_EVENT = "herald.token-expired";

/** Connection states, as `connection.state` reports them. */
export const State = Object.freeze({
  CONNECTING: "connecting",
  OPEN: "open",
  RECONNECTING: "reconnecting",
  CLOSED: "closed",
  UNAUTHORISED: "unauthorised",
});

/** Default backoff: 1 s doubling to 30 s. */
export const DEFAULT_BACKOFF = Object.freeze({ base: 1000, max: 30000 });

/**
 * The wait before reconnect attempt `attempt` (0 for the first), in milliseconds:
 * capped exponential backoff with "equal jitter" — a random time between half the
 * ceiling and the ceiling, where the ceiling is `base · 2^attempt` capped at `max`. The
 * jitter spreads clients that lost their stream at the same moment (a deploy); the
 * floor keeps any of them from retrying at once.
 */
export function backoffDelay(attempt, backoff = DEFAULT_BACKOFF, random = Math.random) {
  const ceiling = Math.min(backoff.max, backoff.base * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** What a probe of a stream's URL answered, and what to do about it. */
export function verdict(status) {
  if (status === 204) return "finished";
  if (status === 401) return "refresh";
  if (status === 403) return "forbidden";
  if (status === 200 || status === 0 || status === 408 || status === 429 || status >= 500) {
    return "retry";
  }
  return "refused";
}

/** An error answer of Herald's API: the status and Herald's message. */
export class HeraldError extends Error {
  constructor(status, message) {
    super(message);
    this.name = "HeraldError";
    this.status = status;
  }
}

/**
 * Opens this page's client stream.
 *
 * @param {object} options see herald.d.ts
 * @returns {Connection}
 */
export function connect(options) {
  return new Connection(options);
}

/** The browser APIs the client uses, from `options` or the global scope. */
function environment(options) {
  const global = globalThis;
  return {
    EventSource: options.EventSource ?? global.EventSource,
    fetch: options.fetch ?? global.fetch?.bind(global),
    storage: options.storage === undefined ? global.sessionStorage ?? null : options.storage,
    setTimeout: options.setTimeout ?? global.setTimeout.bind(global),
    clearTimeout: options.clearTimeout ?? global.clearTimeout.bind(global),
    random: options.random ?? Math.random,
  };
}

function trimSlash(url) {
  return url.replace(/\/+$/, "");
}

function newClientId(random) {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  return Array.from({ length: 32 }, () => Math.floor(random() * 16).toString(16)).join("");
}

/**
 * The status a stream's URL answers (0 when the network fails), read from the head
 * only: EventSource gives up on any answer but 200 without saying which.
 */
async function probe(env, url, withCredentials) {
  if (!env.fetch) return 0;
  const abort = typeof AbortController === "function" ? new AbortController() : null;
  try {
    const response = await env.fetch(url, {
      headers: { Accept: "text/event-stream" },
      credentials: withCredentials ? "include" : "same-origin",
      signal: abort?.signal,
    });
    return response.status;
  } catch {
    return 0;
  } finally {
    abort?.abort();
  }
}

function parse(data) {
  try {
    return JSON.parse(data);
  } catch {
    return data;
  }
}

/** One client stream, kept open by the rules above until `close()`. */
export class Connection {
  #options;
  #env;
  #url;
  #listeners = new Map();
  #names = new Set(["message", POSITION_EVENT, GAP_EVENT, TOKEN_EXPIRED_EVENT]);
  #source = null;
  #state = State.CONNECTING;
  #attempt = 0;
  #timer = null;
  #token = null;
  #refreshed = false;
  #closed = false;

  constructor(options) {
    if (!options?.url) throw new TypeError("connect: `url` (Herald's base URL) is required");
    this.#options = options;
    this.#env = environment(options);
    this.#url = trimSlash(options.url);
    const prefix = options.storageKey ?? `herald:${this.#url}`;
    this.storageKeys = { clientId: `${prefix}:client_id` };
    this.clientId = options.clientId ?? this.#stored(this.storageKeys.clientId) ?? newClientId(this.#env.random);
    this.#store(this.storageKeys.clientId, this.clientId);
    this.storageKeys.lastEventId = `${prefix}:${this.clientId}:last_event_id`;
    this.topics = [...(options.topics ?? [])];
    this.#start();
  }

  /** connecting | open | reconnecting | closed | unauthorised */
  get state() {
    return this.#state;
  }

  /** The id of the last event this client saw (position markers included), if any. */
  get lastEventId() {
    return this.#stored(this.storageKeys.lastEventId);
  }

  /**
   * Calls `fn` for `event`: "message" (unnamed events), any event name a publisher
   * uses, "gap", "state" (the new state) or "error". Returns a function that removes it.
   */
  on(event, fn) {
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(fn);
    if (!["state", "error", GAP_EVENT].includes(event) && !this.#names.has(event)) {
      this.#names.add(event);
      this.#source?.addEventListener(event, (e) => this.#receive(event, e));
    }
    return () => this.#listeners.get(event)?.delete(fn);
  }

  /** Closes the stream for good. */
  close() {
    this.#closed = true;
    this.#env.clearTimeout(this.#timer);
    this.#source?.close();
    this.#source = null;
    this.#setState(State.CLOSED);
  }

  /** `push()` with this connection's `url` and options. */
  push(message, options = {}) {
    return push({ ...this.#options, ...options }, message);
  }

  /** `startTask()` with this connection's `url` and options. */
  startTask(task, options = {}) {
    return startTask({ ...this.#options, ...options }, task);
  }

  /** `watchTask()` with this connection's `url` and options. */
  watchTask(id, options = {}) {
    return watchTask({ ...this.#options, ...options, id });
  }

  async #start() {
    if (this.#options.getToken && this.#token === null) {
      if (!(await this.#refreshToken())) return;
    }
    this.#open();
  }

  #streamUrl() {
    const query = new URLSearchParams({ client_id: this.clientId });
    for (const topic of this.topics) query.append("topic", topic);
    const last = this.lastEventId;
    if (last) query.set("last_event_id", last);
    if (this.#token) query.set("token", this.#token);
    return `${this.#url}/sse?${query}`;
  }

  #open() {
    if (this.#closed) return;
    const source = new this.#env.EventSource(this.#streamUrl(), {
      withCredentials: Boolean(this.#options.withCredentials),
    });
    this.#source = source;
    source.onopen = () => {
      this.#attempt = 0;
      this.#refreshed = false;
      this.#setState(State.OPEN);
    };
    source.onerror = () => {
      if (this.#source !== source) return;
      if (source.readyState === 2 /* CLOSED */) {
        this.#source = null;
        this.#gaveUp();
      } else {
        this.#setState(State.RECONNECTING);
      }
    };
    for (const name of this.#names) {
      source.addEventListener(name, (event) => this.#receive(name, event));
    }
  }

  #receive(name, event) {
    if (event.lastEventId) this.#store(this.storageKeys.lastEventId, event.lastEventId);
    if (name === POSITION_EVENT) return;
    if (name === TOKEN_EXPIRED_EVENT) {
      this.#source?.close();
      this.#source = null;
      this.#reauthorise();
      return;
    }
    const payload = { id: event.lastEventId || null, event: name, data: event.data, value: parse(event.data) };
    this.#emit(name === GAP_EVENT ? GAP_EVENT : name, name === GAP_EVENT ? payload.value : payload);
  }

  /** EventSource stopped retrying: learn why from the status a plain request gets. */
  async #gaveUp() {
    this.#setState(State.RECONNECTING);
    const status = await probe(this.#env, this.#streamUrl(), this.#options.withCredentials);
    if (this.#closed) return;
    switch (verdict(status)) {
      case "finished":
        this.close();
        break;
      case "refresh":
        this.#reauthorise();
        break;
      case "forbidden":
        this.#unauthorised(new HeraldError(status, "the subscriber token does not allow this stream"));
        break;
      case "refused":
        this.#emit("error", new HeraldError(status, `Herald refused the stream (${status})`));
        this.close();
        break;
      default:
        this.#retryLater();
    }
  }

  #retryLater() {
    const delay = backoffDelay(this.#attempt, this.#options.backoff ?? DEFAULT_BACKOFF, this.#env.random);
    this.#attempt += 1;
    this.#env.clearTimeout(this.#timer);
    this.#timer = this.#env.setTimeout(() => this.#open(), delay);
  }

  /** A fresh token, then a new stream; once per failure, so never a loop. */
  async #reauthorise() {
    if (!this.#options.getToken || this.#refreshed) {
      this.#unauthorised(new HeraldError(401, "the subscriber token was refused"));
      return;
    }
    this.#refreshed = true;
    if (await this.#refreshToken()) this.#open();
  }

  async #refreshToken() {
    try {
      this.#token = await this.#options.getToken();
      return true;
    } catch (error) {
      this.#unauthorised(error);
      return false;
    }
  }

  #unauthorised(error) {
    this.#emit("error", error);
    this.#closed = true;
    this.#env.clearTimeout(this.#timer);
    this.#source?.close();
    this.#source = null;
    this.#setState(State.UNAUTHORISED);
  }

  #setState(state) {
    if (this.#state === state) return;
    this.#state = state;
    this.#emit("state", state);
  }

  #emit(event, value) {
    for (const fn of this.#listeners.get(event) ?? []) {
      try {
        fn(value);
      } catch (error) {
        if (event !== "error") this.#emit("error", error);
      }
    }
  }

  #stored(key) {
    try {
      return this.#env.storage?.getItem(key) ?? null;
    } catch {
      return null;
    }
  }

  #store(key, value) {
    try {
      this.#env.storage?.setItem(key, value);
    } catch {
      // Storage full or denied (a private window): the client still works, without resume.
    }
  }
}

/**
 * Watches task `id`: calls `onProgress` with each progress event's data and resolves
 * with the task's result at `done` (rejects with its error), closing the stream then so
 * that EventSource never reconnects.
 */
export function watchTask(options) {
  const env = environment(options);
  const url = `${trimSlash(options.url)}/jobs/${encodeURIComponent(options.id)}/events`;
  let source = null;
  let timer = null;
  let attempt = 0;
  let settled = false;
  let lastEventId = null;
  const promise = new Promise((resolve, reject) => {
    const finish = (outcome) => {
      settled = true;
      env.clearTimeout(timer);
      source?.close();
      source = null;
      outcome();
    };
    const open = () => {
      if (settled) return;
      const query = lastEventId ? `?last_event_id=${encodeURIComponent(lastEventId)}` : "";
      source = new env.EventSource(url + query, { withCredentials: Boolean(options.withCredentials) });
      source.onopen = () => {
        attempt = 0;
      };
      source.addEventListener("progress", (event) => {
        lastEventId = event.lastEventId || lastEventId;
        options.onProgress?.(parse(event.data));
      });
      source.addEventListener("done", (event) => {
        const data = parse(event.data);
        finish(() => (data && "error" in data ? reject(new HeraldError(200, String(data.error))) : resolve(data?.result)));
      });
      source.onerror = () => {
        if (settled || source?.readyState !== 2) return;
        source = null;
        const query = lastEventId ? `?last_event_id=${encodeURIComponent(lastEventId)}` : "";
        probe(env, url + query, options.withCredentials).then((code) => {
          if (settled) return;
          if (verdict(code) === "retry") {
            timer = env.setTimeout(open, backoffDelay(attempt++, options.backoff ?? DEFAULT_BACKOFF, env.random));
          } else {
            finish(() => reject(new HeraldError(code, `the task stream ended without a result (${code})`)));
          }
        });
      };
    };
    open();
  });
  promise.close = () => {
    settled = true;
    env.clearTimeout(timer);
    source?.close();
    source = null;
  };
  return promise;
}

async function post(options, path, body) {
  const env = environment(options);
  const headers = { "Content-Type": "application/json" };
  if (options.publishKey) headers.Authorization = `Bearer ${options.publishKey}`;
  const response = await env.fetch(`${trimSlash(options.url)}${path}`, {
    method: "POST",
    headers,
    body: JSON.stringify(body),
    credentials: options.withCredentials ? "include" : "same-origin",
  });
  const text = await response.text();
  const value = text ? parse(text) : null;
  if (!response.ok) {
    throw new HeraldError(response.status, value?.error ?? `Herald answered ${response.status}`);
  }
  return value;
}

/**
 * Pushes `message` to one client (`clientId`), a `topic` or everyone (`broadcast`);
 * resolves with `{id, delivered}`, rejects with a HeraldError.
 */
export function push(options, { clientId, topic, broadcast, message, event }) {
  const body = { message };
  if (clientId !== undefined) body.client_id = clientId;
  if (topic !== undefined) body.topic = topic;
  if (broadcast) body.broadcast = true;
  if (event !== undefined) body.event = event;
  return post(options, "/push", body);
}

/** Creates a task (`{title, total}`); resolves with `{id, events}`. */
export function startTask(options, task) {
  return post(options, "/jobs", task);
}
