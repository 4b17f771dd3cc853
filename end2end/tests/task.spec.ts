import { expect, test } from "@playwright/test";
import { HeraldPage } from "./fixtures/herald_page";

test("the demo task fills the bar, shows the result and stops listening", async ({ browser }) => {
  const herald = await HeraldPage.open(browser);
  const page = herald.page;
  const streamRequests: string[] = [];
  page.on("request", (request) => {
    if (/\/jobs\/[^/]+\/events/.test(request.url())) streamRequests.push(request.url());
  });

  const task = page.getByRole("region", { name: "Task" });
  await task.getByLabel("Steps").fill("5");
  await task.getByLabel("Interval (ms)").fill("200");
  await task.getByRole("button", { name: "Start demo task" }).click();

  const bar = task.getByRole("progressbar", { name: "Task progress" });
  await expect(bar).toHaveAttribute("max", "5");
  await expect(bar).toHaveAttribute("value", "5");
  await expect(task.getByTestId("task-progress")).toHaveText("5 / 5");
  await expect(task.getByTestId("task-result")).toContainText("finished 5 steps");

  // The server's retry delay is 500 ms here: a reconnecting EventSource would have
  // asked again well within two seconds.
  await page.waitForTimeout(2_000);
  expect(streamRequests).toHaveLength(1);
  herald.expectNoPageErrors();
});
