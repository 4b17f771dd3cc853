// Unit tests of herald-client's rules, with stand-ins for EventSource, fetch, timers
// and sessionStorage (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay, connect, push, State, verdict, watchTask } from "../herald.js";

/** An EventSource the test drives. */
class FakeSource {
  static all = [];
  constructor(url, init) {
    this.url = url;
    this.withCredentials = Boolean(init?.withCredentials);
    this.readyState = 0;
    this.listeners = new Map();
    this.closed = false;
    FakeSource.all.push(this);
  }
  addEventListener(name, fn) {
    if (!this.listeners.has(name)) this.listeners.set(name, []);
    this.listeners.get(name).push(fn);
  }
  close() {
    this.closed = true;
    this.readyState = 2;
  }
  open() {
    this.readyState = 1;
    this.onopen?.();
  }
  emit(name, data, lastEventId = "") {
    for (const fn of this.listeners.get(name) ?? []) fn({ data, lastEventId });
  }
  /** An error after which the browser retries by itself. */
  drop() {
    this.readyState = 0;
    this.onerror?.();
  }
  /** An error after which the browser gives up (a non-200 answer). */
  fail() {
    this.readyState = 2;
    this.onerror?.();
  }
}

/** Timers the test fires by hand. */
function fakeTimers() {
  const timers = { pending: [], delays: [] };
  timers.setTimeout = (fn, delay) => {
    timers.pending.push(fn);
    timers.delays.push(delay);
    return timers.pending.length;
  };
  timers.clearTimeout = () => {};
  timers.fire = () => timers.pending.splice(0).forEach((fn) => fn());
  return timers;
}

function memoryStorage() {
  const map = new Map();
  return { getItem: (k) => map.get(k) ?? null, setItem: (k, v) => map.set(k, String(v)), map };
}

/** fetch answering each request with the next status; records the URLs. */
function fakeFetch(...statuses) {
  const fetch = async (url, init) => {
    fetch.requests.push({ url, init });
    const status = statuses.length > 1 ? statuses.shift() : statuses[0];
    return { status, ok: status >= 200 && status < 300, text: async () => fetch.body ?? "" };
  };
  fetch.requests = [];
  return fetch;
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

function setup(options = {}) {
  FakeSource.all = [];
  const timers = fakeTimers();
  const storage = options.storage ?? memoryStorage();
  const connection = connect({
    url: "https://push.example.com/",
    clientId: "alice",
    topics: ["news", "a/b"],
    EventSource: FakeSource,
    storage,
    setTimeout: timers.setTimeout,
    clearTimeout: timers.clearTimeout,
    random: () => 0.5,
    ...options,
  });
  const states = [];
  connection.on("state", (state) => states.push(state));
  return { connection, timers, storage, states };
}

test("the backoff doubles from the base, is capped, and is jittered above half", () => {
  const backoff = { base: 1000, max: 30000 };
  assert.equal(backoffDelay(0, backoff, () => 0), 500);
  assert.equal(backoffDelay(0, backoff, () => 1), 1000);
  assert.equal(backoffDelay(3, backoff, () => 1), 8000);
  assert.equal(backoffDelay(20, backoff, () => 1), 30000);
  assert.equal(backoffDelay(20, backoff, () => 0), 15000);
  const spread = new Set(Array.from({ length: 50 }, () => backoffDelay(4, backoff)));
  assert.ok(spread.size > 10, "clients that failed together retry apart");
});

test("statuses: 204 ends, 401 refreshes, 403 forbids, 5xx and the network retry, other 4xx stop", () => {
  assert.deepEqual(
    [204, 401, 403, 502, 503, 504, 0, 429, 400, 404].map(verdict),
    ["finished", "refresh", "forbidden", "retry", "retry", "retry", "retry", "retry", "refused", "refused"],
  );
});

test("the stream URL names the client and topics, and resumes from the stored id", async () => {
  const storage = memoryStorage();
  storage.setItem("herald:https://push.example.com:alice:last_event_id", "e-7-c");
  const { connection } = setup({ storage });
  await settle();
  const url = new URL(FakeSource.all[0].url);
  assert.equal(url.origin + url.pathname, "https://push.example.com/sse");
  assert.equal(url.searchParams.get("client_id"), "alice");
  assert.deepEqual(url.searchParams.getAll("topic"), ["news", "a/b"]);
  assert.equal(url.searchParams.get("last_event_id"), "e-7-c");
  assert.equal(connection.state, State.CONNECTING);
});

test("a position marker moves the stored id but is not a message; gap is reported", async () => {
  const { connection, storage } = setup();
  await settle();
  const messages = [];
  const gaps = [];
  connection.on("message", (m) => messages.push(m));
  connection.on("gap", (g) => gaps.push(g));
  const source = FakeSource.all[0];
  source.open();
  source.emit("herald.position", "", "e-3-p");
  assert.equal(connection.lastEventId, "e-3-p");
  source.emit("gap", '{"last_event_id":"e-1-c","reason":"evicted"}');
  source.emit("message", '{"n":1}', "e-4-c");
  assert.deepEqual(gaps, [{ last_event_id: "e-1-c", reason: "evicted" }]);
  assert.deepEqual(messages, [{ id: "e-4-c", event: "message", data: '{"n":1}', value: { n: 1 } }]);
  assert.equal(storage.getItem(connection.storageKeys.lastEventId), "e-4-c");
});

test("named events reach their listeners, also when added after the stream opened", async () => {
  const { connection } = setup();
  await settle();
  const source = FakeSource.all[0];
  source.open();
  const seen = [];
  connection.on("order.shipped", (m) => seen.push(m.value));
  source.emit("order.shipped", '{"id":9}', "e-5-c");
  assert.deepEqual(seen, [{ id: 9 }]);
});

test("after EventSource gives up on a 503 it reconnects with backoff, resuming, and an open resets it", async () => {
  const fetch = fakeFetch(503);
  const { connection, timers, states } = setup({ fetch });
  await settle();
  FakeSource.all[0].open();
  FakeSource.all[0].emit("message", "a", "e-9-c");
  for (let attempt = 0; attempt < 3; attempt++) {
    FakeSource.all.at(-1).fail();
    await settle();
    assert.equal(connection.state, State.RECONNECTING);
    timers.fire();
  }
  assert.equal(FakeSource.all.length, 4);
  assert.deepEqual(timers.delays, [750, 1500, 3000], "doubling, jittered at 0.5");
  assert.equal(new URL(FakeSource.all[3].url).searchParams.get("last_event_id"), "e-9-c");
  FakeSource.all[3].open();
  FakeSource.all[3].fail();
  await settle();
  assert.equal(timers.delays.at(-1), 750, "an open stream starts the backoff over");
  assert.deepEqual(states.slice(0, 2), [State.OPEN, State.RECONNECTING]);
  assert.equal(fetch.requests[0].init.headers.Accept, "text/event-stream");
});

test("a drop the browser retries by itself is left to it", async () => {
  const fetch = fakeFetch(503);
  const { connection } = setup({ fetch });
  await settle();
  FakeSource.all[0].open();
  FakeSource.all[0].drop();
  await settle();
  assert.equal(connection.state, State.RECONNECTING);
  assert.equal(fetch.requests.length, 0);
  assert.equal(FakeSource.all.length, 1);
});

test("204 closes for good", async () => {
  const { connection, timers } = setup({ fetch: fakeFetch(204) });
  await settle();
  FakeSource.all[0].fail();
  await settle();
  assert.equal(connection.state, State.CLOSED);
  assert.equal(timers.pending.length, 0);
  assert.equal(FakeSource.all.length, 1);
});

test("a 401 gets one fresh token; a second 401 stops as unauthorised instead of looping", async () => {
  const tokens = ["t1", "t2", "t3"];
  let asked = 0;
  const getToken = async () => tokens[asked++];
  const fetch = fakeFetch(401);
  const { connection } = setup({ fetch, getToken });
  await settle();
  assert.equal(new URL(FakeSource.all[0].url).searchParams.get("token"), "t1");
  FakeSource.all[0].fail();
  await settle();
  assert.equal(asked, 2);
  assert.equal(new URL(FakeSource.all[1].url).searchParams.get("token"), "t2");
  FakeSource.all[1].fail();
  await settle();
  assert.equal(connection.state, State.UNAUTHORISED);
  assert.equal(asked, 2, "no third token");
  assert.equal(FakeSource.all.length, 2, "no third stream");
});

test("herald.token-expired refreshes the token and reconnects at once, resuming", async () => {
  let asked = 0;
  const { connection } = setup({ fetch: fakeFetch(503), getToken: async () => `t${++asked}` });
  await settle();
  const first = FakeSource.all[0];
  first.open();
  first.emit("message", "x", "e-2-c");
  first.emit("herald.token-expired", '{"reason":"token expired"}');
  await settle();
  assert.ok(first.closed);
  const second = new URL(FakeSource.all[1].url);
  assert.equal(second.searchParams.get("token"), "t2");
  assert.equal(second.searchParams.get("last_event_id"), "e-2-c");
  FakeSource.all[1].open();
  assert.equal(connection.state, State.OPEN);
});

test("without getToken a 401 is unauthorised at once", async () => {
  const { connection } = setup({ fetch: fakeFetch(401) });
  await settle();
  FakeSource.all[0].fail();
  await settle();
  assert.equal(connection.state, State.UNAUTHORISED);
});

test("close() stops everything, a pending reconnect included", async () => {
  const { connection, timers } = setup({ fetch: fakeFetch(503) });
  await settle();
  FakeSource.all[0].fail();
  await settle();
  connection.close();
  timers.fire();
  assert.equal(FakeSource.all.length, 1);
  assert.equal(connection.state, State.CLOSED);
});

test("a client id is made once and kept in sessionStorage", async () => {
  const storage = memoryStorage();
  FakeSource.all = [];
  const options = { url: "http://h", EventSource: FakeSource, storage, fetch: fakeFetch(503) };
  const first = connect(options);
  const again = connect(options);
  assert.match(first.clientId, /^[A-Za-z0-9-]{8,}$/);
  assert.equal(again.clientId, first.clientId);
  first.close();
  again.close();
});

test("watchTask reports progress, resolves with the result and closes at done", async () => {
  FakeSource.all = [];
  const fetch = fakeFetch(503);
  const progress = [];
  const watched = watchTask({
    url: "http://h",
    id: "job1",
    EventSource: FakeSource,
    fetch,
    onProgress: (p) => progress.push(p.step),
  });
  const source = FakeSource.all[0];
  assert.equal(source.url, "http://h/jobs/job1/events");
  source.emit("progress", '{"step":0,"total":2}', "j-1");
  source.emit("progress", '{"step":2,"total":2}', "j-2");
  source.emit("done", '{"result":{"url":"/x.csv"}}', "j-3");
  assert.deepEqual(await watched, { url: "/x.csv" });
  assert.deepEqual(progress, [0, 2]);
  assert.ok(source.closed, "closed before EventSource could reconnect");
  assert.equal(fetch.requests.length, 0);
});

test("watchTask rejects with a failed task's error", async () => {
  FakeSource.all = [];
  const watched = watchTask({ url: "http://h", id: "j", EventSource: FakeSource });
  FakeSource.all[0].emit("done", '{"error":"tests failed"}', "j-2");
  await assert.rejects(watched, /tests failed/);
});

test("push sends JSON with the publish key and turns an error answer into a HeraldError", async () => {
  const fetch = fakeFetch(200);
  fetch.body = '{"id":"e-1-c","delivered":1}';
  const result = await push({ url: "http://h/", publishKey: "k", fetch }, { clientId: "bob", message: { hi: 1 } });
  assert.deepEqual(result, { id: "e-1-c", delivered: 1 });
  const { url, init } = fetch.requests[0];
  assert.equal(url, "http://h/push");
  assert.equal(init.headers.Authorization, "Bearer k");
  assert.deepEqual(JSON.parse(init.body), { message: { hi: 1 }, client_id: "bob" });
  const refused = fakeFetch(400);
  refused.body = '{"error":"exactly one target"}';
  await assert.rejects(push({ url: "http://h", fetch: refused }, { message: 1 }), {
    name: "HeraldError",
    status: 400,
    message: "exactly one target",
  });
});
