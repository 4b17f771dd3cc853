import { expect, test } from "@playwright/test";
import { HeraldPage } from "./fixtures/herald_page";

// Tabs of one browser share one connection pool (one browser context, several pages);
// over plain HTTP/1.1 that pool holds at most 6 connections to the site, and each open
// tab's stream keeps one. A tab that cannot get one must say so, not "connecting" forever.
test("over plain HTTP a seventh tab whose stream cannot open says why and what fixes it", async ({ browser }) => {
  test.setTimeout(60_000);
  const context = await browser.newContext();
  const tabs: HeraldPage[] = [];
  for (let n = 0; n < 6; n++) {
    const tab = new HeraldPage(await context.newPage());
    await tab.goto();
    tabs.push(tab);
  }
  // The seventh tab's page, scripts and polls come from outside the browser's pool (as
  // from its cache after a session restore); only its stream needs a connection.
  const seventh = new HeraldPage(await context.newPage());
  await seventh.page.route(
    (url) => url.pathname !== "/sse",
    async (route) => route.fulfill({ response: await route.fetch() }),
  );
  await seventh.page.goto("/");
  await expect(seventh.clientId).toHaveText(/^[A-Za-z0-9._~-]{1,128}$/);
  await expect(seventh.connectionState).toHaveText("connecting");
  const hint = seventh.page.getByTestId("connection-hint");
  await expect(hint).toContainText("at most 6 connections", { timeout: 15_000 });
  await expect(hint).toContainText("HTTPS");

  // Closing another tab frees a connection: the stream opens and the hint goes.
  await tabs[0].page.close();
  await expect(seventh.connectionState).toHaveText("open");
  await expect(hint).toHaveCount(0);
  seventh.expectNoPageErrors();
  await context.close();
});

// Over HTTPS Herald speaks HTTP/2 (ALPN): one connection carries every tab's stream, so
// twelve tabs of one browser all open theirs — twice what HTTP/1.1's pool allows.
test("over HTTPS twelve tabs of one browser each open their stream and show their own push", async ({ browser }) => {
  test.setTimeout(90_000);
  const baseURL = process.env.E2E_TLS_URL!;
  const context = await browser.newContext({ baseURL, ignoreHTTPSErrors: true });
  const tabs: HeraldPage[] = [];
  for (let n = 0; n < 12; n++) {
    const tab = new HeraldPage(await context.newPage());
    await tab.goto();
    tabs.push(tab);
  }
  const protocol = await tabs[0].page.evaluate(
    () => (performance.getEntriesByType("navigation")[0] as PerformanceNavigationTiming).nextHopProtocol,
  );
  expect(protocol).toBe("h2");
  const ids = await Promise.all(tabs.map((tab) => tab.id()));
  expect(new Set(ids).size).toBe(12);
  for (const tab of tabs) {
    await expect(tab.connectionState).toHaveText("open");
  }

  for (const [n, id] of ids.entries()) {
    const pushed = await context.request.post("/push", { data: { client_id: id, message: `for tab ${n}` } });
    expect(pushed.status()).toBe(200);
    expect((await pushed.json()).delivered).toBe(1);
  }
  for (const [n, tab] of tabs.entries()) {
    await expect(tab.messages).toHaveCount(1);
    await expect(tab.messages.first()).toContainText(`for tab ${n}`);
    tab.expectNoPageErrors();
  }
  await context.close();
});
