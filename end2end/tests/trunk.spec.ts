import * as fs from "node:fs";
import * as path from "node:path";
import { expect, test, type Browser } from "@playwright/test";
import { HeraldPage } from "./fixtures/herald_page";
import { HeraldProcess } from "./fixtures/herald_process";
import { StaticServer } from "./fixtures/static_server";

// The static build (make static: Trunk, target/trunk-dist/) hosted by a plain file
// server on another origin, told by its config.json where Herald is; Herald allows
// that origin (--cors-origin).
const dist = path.resolve(__dirname, "../../target/trunk-dist");

let herald: HeraldProcess;
let site: StaticServer;

test.beforeAll(async () => {
  // Locally without a static build, skip; CI (make test) always builds it first.
  test.skip(!process.env.CI && !fs.existsSync(path.join(dist, "index.html")), "no static build: run make static");
  // The site's origin must be known to Herald, and Herald's to the site: the site
  // first, on a port of its own, with its config pointing at Herald's port.
  herald = await HeraldProcess.start(["--retry", "500ms"]);
  site = await StaticServer.serve(dist, { "/config.json": { server: herald.url } });
  await herald.stop();
  await herald.startWith(["--cors-origin", site.url]);
});

test.afterAll(async () => {
  await site?.close();
  await herald?.dispose();
});

async function tab(browser: Browser) {
  return HeraldPage.open(browser, site.url);
}

test("tabs of the static build each get their own id, and a push from one reaches the one it names", async ({ browser }) => {
  const [first, second, third] = [await tab(browser), await tab(browser), await tab(browser)];
  const ids = [await first.id(), await second.id(), await third.id()];
  expect(new Set(ids).size).toBe(3);
  // The connected clients, read from Herald across origins, list every tab.
  const clients = first.page.getByRole("list", { name: "Connected clients" });
  for (const id of ids) {
    await expect(clients.getByTestId("client-row-id").filter({ hasText: id })).toHaveCount(1);
  }
  const secret = `for the second tab ${Date.now()}`;
  await first.push("Client", secret, ids[1]);
  await expect(first.pushResult).toHaveText(/Delivered to 1 connection/);
  await second.expectMessage(secret);
  const marker = `everyone ${Date.now()}`;
  await first.push("Everyone", marker);
  for (const page of [first, second, third]) {
    await page.expectMessage(marker);
  }
  for (const page of [first, third]) {
    expect(await page.messageData()).not.toContain(secret);
  }
  [first, second, third].forEach((page) => page.expectNoPageErrors());
});

test("the static build's demo task fills the bar to 100%", async ({ browser }) => {
  const page = (await tab(browser)).page;
  const task = page.getByRole("region", { name: "Task" });
  await task.getByLabel("Steps").fill("3");
  await task.getByLabel("Interval (ms)").fill("100");
  await task.getByRole("button", { name: "Start demo task" }).click();
  const bar = task.getByRole("progressbar", { name: "Task progress" });
  await expect(bar).toHaveAttribute("value", "3");
  await expect(task.getByTestId("task-result")).toContainText("finished 3 steps");
});

test("a reload of the static build keeps the id and shows what was pushed meanwhile", async ({ browser }) => {
  const page = await tab(browser);
  const id = await page.id();
  const during = `during the reload ${Date.now()}`;
  await page.reloadWhile(async () => {
    const response = await fetch(`${herald.url}/push`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ client_id: id, message: during }),
    });
    expect(response.status).toBe(200);
  });
  expect(await page.id()).toBe(id);
  await page.expectMessage(during);
  page.expectNoPageErrors();
});
