import { expect, test } from "@playwright/test";
import { HeraldPage } from "./fixtures/herald_page";

test("three tabs each show a different client id", async ({ browser }) => {
  const pages = [await HeraldPage.open(browser), await HeraldPage.open(browser), await HeraldPage.open(browser)];
  const ids = await Promise.all(pages.map((page) => page.id()));
  expect(new Set(ids).size).toBe(3);
  pages.forEach((page) => page.expectNoPageErrors());
});

test("a reload keeps the client id", async ({ browser }) => {
  const herald = await HeraldPage.open(browser);
  const before = await herald.id();
  await herald.reload();
  expect(await herald.id()).toBe(before);
  herald.expectNoPageErrors();
});

test("the connected clients list shows this tab", async ({ browser }) => {
  const herald = await HeraldPage.open(browser);
  const id = await herald.id();
  const clients = herald.page.getByRole("list", { name: "Connected clients" });
  await expect(clients.getByTestId("client-row-id").filter({ hasText: id })).toHaveCount(1);
});
