import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { expect, test, type Page } from "@playwright/test";
import { reloadWhile } from "./fixtures/herald_page";
import { HeraldProcess } from "./fixtures/herald_process";
import { StaticServer } from "./fixtures/static_server";

// herald-client (clients/js/) in the example page of clients/js/examples/, hosted on
// another origin than the Herald it talks to, as any app would host it; the page
// imports the module from Herald's /client/herald.js.

let site: StaticServer;
test.beforeAll(async () => {
  site = await StaticServer.serve(path.resolve(__dirname, "../../clients/js/examples"));
});
test.afterAll(async () => site.close());

async function openExample(page: Page, herald: HeraldProcess) {
  await page.goto(`${site.url}/index.html?herald=${encodeURIComponent(herald.url)}`);
  await expect(page.locator("#state")).toHaveText("open");
  return (await page.locator("#client-id").textContent())!.trim();
}

async function push(herald: HeraldProcess, clientId: string, message: string) {
  const response = await fetch(`${herald.url}/push`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ client_id: clientId, message }),
  });
  expect(response.status).toBe(200);
  return (await response.json()) as { id: string; delivered: number };
}

/** Reloads the example page while its new stream is held (see `reloadWhile`). */
async function reloadExampleWhile(page: Page, during: () => Promise<void>) {
  await reloadWhile(page, during, () => expect(page.locator("#state")).toHaveText("open"));
}

test("a page using herald-client resumes after a reload, and is told of a gap", async ({ page }) => {
  const herald = await HeraldProcess.start(["--cors-origin", site.url, "--history", "1"]);
  try {
    const messages = page.getByRole("list", { name: "Messages" }).getByRole("listitem");
    const id = await openExample(page, herald);
    await push(herald, id, "first");
    await expect(messages).toHaveText(["first"]);

    await reloadExampleWhile(page, async () => {
      expect((await push(herald, id, "second")).delivered).toBe(0);
    });
    await expect(messages).toHaveText(["second"]);
    await expect(page.locator("#gap")).toBeHidden();

    // History keeps one message per client here: two while away lose the first.
    await reloadExampleWhile(page, async () => {
      await push(herald, id, "third");
      await push(herald, id, "fourth");
    });
    await expect(page.locator("#gap")).toBeVisible();
    await expect(messages).toHaveText(["fourth"]);
  } finally {
    await herald.dispose();
  }
});

test("after a deploy's 503s herald-client reconnects by itself and gets the next push", async ({ page }) => {
  test.setTimeout(90_000);
  const herald = await HeraldProcess.start(["--cors-origin", site.url, "--drain-spread", "0s"]);
  try {
    const id = await openExample(page, herald);
    await herald.stop();
    await herald.answer503();
    await page.waitForResponse((response) => response.url().includes("/sse?") && response.status() === 503);
    await expect(page.locator("#state")).toHaveText("reconnecting");
    await herald.stopAnswering503();
    await herald.startAgain();
    await expect(page.locator("#state")).toHaveText("open", { timeout: 40_000 });
    expect((await push(herald, id, "after the deploy")).delivered).toBe(1);
    await expect(page.getByRole("listitem").filter({ hasText: "after the deploy" })).toHaveCount(1);
  } finally {
    await herald.dispose();
  }
});

test("watchTask reports progress, resolves with the result and asks nothing after done", async ({ page }) => {
  const herald = await HeraldProcess.start(["--cors-origin", site.url]);
  try {
    await openExample(page, herald);
    const eventsRequests: string[] = [];
    page.on("request", (request) => {
      if (request.url().includes("/events")) eventsRequests.push(request.url());
    });
    const watched = await page.evaluate(async (url) => {
      const created = await fetch(`${url}/jobs/demo`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ steps: 3, interval_ms: 50 }),
      }).then((response) => response.json());
      const steps: number[] = [];
      // @ts-expect-error: the example page puts the module on window.
      const result = await window.herald.watchTask({ url, id: created.id, onProgress: (p) => steps.push(p.step) });
      return { result, steps };
    }, herald.url);
    expect(watched.steps).toEqual([0, 1, 2, 3]);
    expect(String(watched.result)).toMatch(/^finished 3 steps in /);
    // Past the stream's retry delay: EventSource would have asked again by now.
    await page.waitForTimeout(2_500);
    expect(eventsRequests).toHaveLength(1);
  } finally {
    await herald.dispose();
  }
});

test("an expired token is refreshed through getToken once, and a refused one does not loop", async ({ page }) => {
  test.setTimeout(60_000);
  const secret = "e2e-client-secret-0123456789abcdef";
  const herald = await HeraldProcess.start([
    "--cors-origin", site.url, "--subscriber-secret", secret, "--allow-query-token",
  ]);
  const mint = (sub: string, ttl: string) =>
    execFileSync(path.resolve(__dirname, "../..", process.env.HERALD_BIN ?? "../target/debug/herald"), [
      "token", "--sub", sub, "--ttl", ttl,
    ], { env: { ...process.env, HERALD_SUBSCRIBER_SECRET: secret } }).toString().trim();
  try {
    await page.goto(`${site.url}/index.html?herald=${encodeURIComponent(herald.url)}`);
    const streams = (client: string) => {
      const seen: string[] = [];
      page.on("request", (request) => {
        if (request.url().includes(`/sse?client_id=${client}`)) seen.push(request.url());
      });
      return seen;
    };

    // A token that expires in two seconds, then a fresh one: one refresh, two streams.
    const refreshed = streams("refreshed");
    const tokens = [mint("refreshed", "2s"), mint("refreshed", "1h")];
    await page.evaluate((tokens) => {
      const calls = { n: 0 };
      // @ts-expect-error: test hooks on window.
      window.calls = calls;
      // @ts-expect-error: the example page puts the module on window.
      window.refreshed = window.herald.connect({
        url: new URLSearchParams(location.search).get("herald"),
        clientId: "refreshed",
        getToken: () => tokens[Math.min(calls.n++, tokens.length - 1)],
      });
    }, tokens);
    // @ts-expect-error: test hooks on window.
    await expect.poll(() => page.evaluate(() => window.calls.n), { timeout: 15_000 }).toBe(2);
    // @ts-expect-error: test hooks on window.
    await expect.poll(() => page.evaluate(() => window.refreshed.state)).toBe("open");
    expect((await push(herald, "refreshed", "with a fresh token")).delivered).toBe(1);
    expect(refreshed).toHaveLength(2);

    // A token Herald refuses: one refresh, then unauthorised — no loop.
    const refused = streams("refused");
    await page.evaluate(() => {
      const calls = { n: 0 };
      // @ts-expect-error: test hooks on window.
      window.refusedCalls = calls;
      // @ts-expect-error: the example page puts the module on window.
      window.refused = window.herald.connect({
        url: new URLSearchParams(location.search).get("herald"),
        clientId: "refused",
        getToken: () => {
          calls.n++;
          return "not-a-token";
        },
      });
    });
    // @ts-expect-error: test hooks on window.
    await expect.poll(() => page.evaluate(() => window.refused.state)).toBe("unauthorised");
    await page.waitForTimeout(3_000);
    // @ts-expect-error: test hooks on window.
    expect(await page.evaluate(() => window.refusedCalls.n)).toBe(2);
    // Each token tried once by EventSource and once by the probe that learns the 401.
    expect(refused.length).toBeLessThanOrEqual(4);
  } finally {
    await herald.dispose();
  }
});
