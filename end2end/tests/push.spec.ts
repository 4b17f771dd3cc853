import { expect, test } from "@playwright/test";
import { HeraldPage } from "./fixtures/herald_page";

test("a push to the second tab's id reaches the second tab only", async ({ browser }) => {
  const [first, second, third] = [
    await HeraldPage.open(browser),
    await HeraldPage.open(browser),
    await HeraldPage.open(browser),
  ];
  const secret = `for the second tab ${Date.now()}`;
  await first.push("Client", secret, await second.id());
  await expect(first.pushResult).toHaveText(/Delivered to 1 connection/);
  await second.expectMessage(secret);
  await expect(second.messages.filter({ hasText: secret }).getByTestId("message-kind")).toHaveText("client");

  // Messages arrive in order on every stream: once the others show a later
  // broadcast, the unicast can no longer be on its way to them.
  const marker = `marker ${Date.now()}`;
  await first.push("Everyone", marker);
  for (const page of [first, third]) {
    await page.expectMessage(marker);
    expect(await page.messageData()).not.toContain(secret);
  }
  [first, second, third].forEach((page) => page.expectNoPageErrors());
});

test("a broadcast from the form appears on all three tabs", async ({ browser }) => {
  const pages = [await HeraldPage.open(browser), await HeraldPage.open(browser), await HeraldPage.open(browser)];
  const news = `hello everyone ${Date.now()}`;
  await pages[0].push("Everyone", news);
  await expect(pages[0].pushResult).toHaveText(/Delivered to \d+ connection/);
  for (const page of pages) {
    await page.expectMessage(news);
    await expect(page.messages.filter({ hasText: news }).getByTestId("message-kind")).toHaveText("everyone");
  }
});

test("a bad push shows the server's error", async ({ browser }) => {
  const herald = await HeraldPage.open(browser);
  await herald.push("Client", "hi", "not a valid id");
  await expect(herald.pushResult).toContainText("client_id must be");
});
