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
