import { expect, test } from "@playwright/test";
import { HeraldPage } from "./fixtures/herald_page";
import { HeraldProcess } from "./fixtures/herald_process";

// A deploy, as a page behind a proxy sees it: the node stops, the proxy answers 503
// (EventSource gives up for good on it), then the node is back on the same address.
test("after a deploy's 503s Herald's page reconnects by itself and shows the next push", async ({ browser }) => {
  test.setTimeout(90_000);
  const herald = await HeraldProcess.start(["--drain-spread", "0s"]);
  try {
    const context = await browser.newContext({ baseURL: herald.url });
    const tab = new HeraldPage(await context.newPage());
    await tab.goto();
    const id = await tab.id();

    await herald.stop();
    await herald.answer503();
    const gaveUp = tab.page.waitForResponse((response) => response.url().includes("/sse?") && response.status() === 503);
    await gaveUp;
    await expect(tab.connectionState).toHaveText("reconnecting");
    await herald.stopAnswering503();
    await herald.startAgain();

    await expect(tab.connectionState).toHaveText("open", { timeout: 40_000 });
    const pushed = await context.request.post(`${herald.url}/push`, {
      data: { client_id: id, message: "after the deploy" },
    });
    expect((await pushed.json()).delivered).toBe(1);
    await tab.expectMessage("after the deploy");
    await context.close();
  } finally {
    await herald.dispose();
  }
});
