import { expect, test } from "@playwright/test";
import { HeraldPage } from "./fixtures/herald_page";

// Two nodes on one Redis (see playwright.config.ts): a person on node A pushes to a
// person on node B with the page's own form.
const [nodeA, nodeB] = (process.env.E2E_NODE_URLS ?? "").split(" ");

test("a push from a page on one node reaches a page on another node", async ({ browser }) => {
  const onA = await HeraldPage.open(browser, nodeA);
  const onB = await HeraldPage.open(browser, nodeB);
  const note = `across the cluster ${Date.now()}`;
  // Presence is cluster-wide: A's page lists B's client once B's node reported it.
  await expect(onA.page.getByRole("list", { name: "Connected clients" })).toContainText(await onB.id());

  await onA.push("Client", note, await onB.id());
  await expect(onA.pushResult).toHaveText(/Delivered to 1 connection/);
  await onB.expectMessage(note);
  expect(await onA.messageData()).not.toContain(note);
  [onA, onB].forEach((page) => page.expectNoPageErrors());
});
