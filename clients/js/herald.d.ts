// Types of herald-client (herald.js).

/** Where a client stream stands. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed" | "unauthorised";

export declare const State: Readonly<{
  CONNECTING: "connecting";
  OPEN: "open";
  RECONNECTING: "reconnecting";
  CLOSED: "closed";
  UNAUTHORISED: "unauthorised";
}>;

/** Reconnect delays: `base · 2^attempt` ms, capped at `max` ms, with jitter. */
export interface Backoff {
  base: number;
  max: number;
}

export declare const DEFAULT_BACKOFF: Readonly<Backoff>;

/** What every call takes: where Herald is, and how to reach it. */
export interface HeraldOptions {
  /** Herald's base URL, e.g. `https://push.example.com`. */
  url: string;
  /** Send cookies to Herald on another origin (Herald needs `--cors-origin` for this page). */
  withCredentials?: boolean;
  /** A publish key, for `push` and `startTask` when Herald requires one. */
  publishKey?: string;
  /** Reconnect delays (default 1 s doubling to 30 s). */
  backoff?: Backoff;
  /** Stand-ins for the browser's APIs (tests). */
  EventSource?: typeof EventSource;
  fetch?: typeof fetch;
  storage?: Storage | null;
  setTimeout?: typeof setTimeout;
  clearTimeout?: typeof clearTimeout;
  random?: () => number;
}

export interface ConnectOptions extends HeraldOptions {
  /** This tab's client id; by default one is made and kept in sessionStorage. */
  clientId?: string;
  /** Topics to join. */
  topics?: string[];
  /**
   * Returns a subscriber token (a JWT from your backend). Called before the first
   * connect, on `herald.token-expired` and on a 401, at most once per failure. The
   * token travels as `?token=`: start Herald with `--allow-query-token`.
   */
  getToken?: () => string | Promise<string>;
  /** Prefix of the sessionStorage keys (default `herald:<url>`). */
  storageKey?: string;
}

/** An event as a listener gets it. */
export interface HeraldMessage {
  /** The event id (null for events without one). */
  id: string | null;
  /** The event name: "message" for unnamed events. */
  event: string;
  /** The data as sent. */
  data: string;
  /** The data parsed as JSON, or the string when it is not JSON. */
  value: unknown;
}

/** What `gap` listeners get: messages after this id may have been missed. */
export interface Gap {
  last_event_id: string;
  reason: "evicted" | "unknown" | string;
}

export interface PushResult {
  id: string;
  delivered: number;
}

export interface TaskCreated {
  id: string;
  events: string;
}

export interface Progress {
  step: number;
  total: number;
  message?: string;
}

/** A task being watched: resolves with its result at `done`. */
export interface TaskWatch<T = unknown> extends Promise<T> {
  /** Stops watching. */
  close(): void;
}

export declare class HeraldError extends Error {
  readonly status: number;
  constructor(status: number, message: string);
}

export declare class Connection {
  readonly clientId: string;
  readonly topics: string[];
  readonly state: ConnectionState;
  /** The last event id seen (position markers included); kept across reloads. */
  readonly lastEventId: string | null;
  readonly storageKeys: { clientId: string; lastEventId: string };
  on(event: "state", fn: (state: ConnectionState) => void): () => void;
  on(event: "gap", fn: (gap: Gap) => void): () => void;
  on(event: "error", fn: (error: Error) => void): () => void;
  on(event: string, fn: (message: HeraldMessage) => void): () => void;
  close(): void;
  push(message: PushMessage, options?: Partial<HeraldOptions>): Promise<PushResult>;
  startTask(task: { title?: string; total?: number }, options?: Partial<HeraldOptions>): Promise<TaskCreated>;
  watchTask<T = unknown>(id: string, options?: Partial<WatchOptions>): TaskWatch<T>;
}

export interface PushMessage {
  clientId?: string;
  topic?: string;
  broadcast?: boolean;
  message: unknown;
  event?: string;
}

export interface WatchOptions extends HeraldOptions {
  id: string;
  onProgress?: (progress: Progress) => void;
}

export declare function connect(options: ConnectOptions): Connection;
export declare function watchTask<T = unknown>(options: WatchOptions): TaskWatch<T>;
export declare function push(options: HeraldOptions, message: PushMessage): Promise<PushResult>;
export declare function startTask(
  options: HeraldOptions,
  task: { title?: string; total?: number },
): Promise<TaskCreated>;
export declare function backoffDelay(attempt: number, backoff?: Backoff, random?: () => number): number;
export declare function verdict(status: number): "finished" | "refresh" | "forbidden" | "retry" | "refused";
