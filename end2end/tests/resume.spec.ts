import { expect, test } from "@playwright/test";
import { apiPush, HeraldPage } from "./fixtures/herald_page";

test("a tab cut off by the server shows what was pushed while it was away, once each", async ({
  browser,
  request,
}) => {
  const herald = await HeraldPage.open(browser);
  const id = await herald.id();
  await apiPush(request, { client_id: id, message: "before the cut" });
  await herald.expectMessage("before the cut");

  const kicked = await request.delete(`/clients/${id}`);
  expect(kicked.status()).toBe(200);
  // Pushed while the tab has no connection (it reconnects after the retry delay).
  const away = ["away 1", "away 2", "away 3"];
  for (const message of away) {
    await apiPush(request, { client_id: id, message });
  }
  for (const message of away) {
    await herald.expectMessage(message);
  }
  await expect(herald.connectionState).toHaveText("open");
  expect(await herald.messageData()).toEqual(["before the cut", ...away]);
  await expect(herald.gapNotice).toHaveCount(0);
});

test("a reload shows the messages pushed during the reload", async ({ browser, request }) => {
  const herald = await HeraldPage.open(browser);
  const id = await herald.id();
  await apiPush(request, { client_id: id, message: "seen before reload" });
  await herald.expectMessage("seen before reload");

  await herald.reloadWhile(async () => {
    for (const message of ["during reload 1", "during reload 2"]) {
      await apiPush(request, { client_id: id, message });
    }
  });
  await herald.expectMessage("during reload 1");
  await herald.expectMessage("during reload 2");
  expect(await herald.messageData()).toEqual(["during reload 1", "during reload 2"]);
});

test("a gap is shown to the person", async ({ browser, request }) => {
  const herald = await HeraldPage.open(browser);
  const id = await herald.id();
  await apiPush(request, { client_id: id, message: "last seen" });
  await herald.expectMessage("last seen");
  await expect(herald.gapNotice).toHaveCount(0);

  // The tab leaves the page (sessionStorage stays with the tab) while more messages
  // are pushed than the history keeps per target (100 by default).
  await herald.page.goto("about:blank");
  for (let n = 0; n < 105; n++) {
    await apiPush(request, { client_id: id, message: `missed ${n}` });
  }
  await herald.goto();
  expect(await herald.id()).toBe(id);
  await expect(herald.gapNotice).toBeVisible();
  await expect(herald.gapNotice).toContainText("missed");
  await herald.expectMessage("missed 104");
  await expect(herald.messages).toHaveCount(100);
});

test("a tab that has received nothing yet still gets what was pushed during its reload", async ({
  browser,
  request,
}) => {
  const herald = await HeraldPage.open(browser);
  const id = await herald.id();
  await expect(herald.messages).toHaveCount(0);

  await herald.reloadWhile(async () => {
    await apiPush(request, { client_id: id, message: "first ever, during reload" });
  });
  await herald.expectMessage("first ever, during reload");
  await expect(herald.gapNotice).toHaveCount(0);
});
