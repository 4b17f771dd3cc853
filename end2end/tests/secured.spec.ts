import { createHmac } from "node:crypto";
import { expect, test } from "@playwright/test";
import { HeraldPage } from "./fixtures/herald_page";

// A node started with a subscriber secret and a publish key (playwright.config.ts).
const secureURL = process.env.E2E_SECURE_URL!;
const secret = process.env.E2E_SUBSCRIBER_SECRET!;
const publishKey = process.env.E2E_PUBLISH_KEY!;

/** An HS256 subscriber token, minted as an application backend would. */
function subscriberToken(sub: string, seconds = 600): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({
    sub,
    topics: ["*"],
    jobs: ["*"],
    exp: Math.floor(Date.now() / 1000) + seconds,
  })}`;
  return `${body}.${createHmac("sha256", secret).update(body).digest("base64url")}`;
}

test("without a token the page says it is not authorised and stops", async ({ browser }) => {
  const context = await browser.newContext({ baseURL: secureURL });
  const page = await context.newPage();
  let streamRequests = 0;
  page.on("request", (request) => {
    if (request.url().includes("/sse?")) streamRequests += 1;
  });
  const herald = new HeraldPage(page);
  await page.goto("/");
  await expect(herald.connectionState).toHaveText("not authorised");
  await expect(page.getByTestId("connection-error")).toContainText("token is required");
  const settled = streamRequests;
  await page.waitForTimeout(2_000);
  expect(streamRequests, "no reconnect loop").toBe(settled);
});

test("with a pasted token and key the page receives and pushes", async ({ browser }) => {
  const context = await browser.newContext({ baseURL: secureURL });
  const herald = new HeraldPage(await context.newPage());
  await herald.page.goto("/");
  await expect(herald.connectionState).toHaveText("not authorised");

  const credentials = herald.page.getByRole("form", { name: "Credentials" });
  await credentials.getByLabel("Subscriber token").fill(subscriberToken(await herald.id()));
  await credentials.getByLabel("Publish key").fill(publishKey);
  await credentials.getByRole("button", { name: "Use" }).click();
  await expect(herald.connectionState).toHaveText("open");

  const note = `signed and sealed ${Date.now()}`;
  await herald.push("Client", note, await herald.id());
  await expect(herald.pushResult).toHaveText(/Delivered to 1 connection/);
  await herald.expectMessage(note);
  herald.expectNoPageErrors();
});
