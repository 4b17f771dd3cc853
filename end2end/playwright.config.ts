import { defineConfig, devices } from "@playwright/test";
import * as path from "node:path";

// The server under test is the real `herald` binary, started here by Playwright
// (scripts/test.sh builds it and picks a free port). Chromium is Debian's: nothing
// is downloaded.
const port = process.env.E2E_PORT ?? "3100";
const baseURL = `http://127.0.0.1:${port}`;
const here = __dirname;
const heraldBin = path.resolve(here, process.env.HERALD_BIN ?? "../target/debug/herald");
const siteRoot = path.resolve(here, process.env.HERALD_SITE_ROOT ?? "../target/site");

export default defineConfig({
  testDir: "./tests",
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  workers: 1,
  reporter: [["list"]],
  use: { baseURL, actionTimeout: 10_000, trace: "off" },
  webServer: {
    command: `"${heraldBin}"`,
    url: `${baseURL}/healthz`,
    reuseExistingServer: false,
    timeout: 60_000,
    stdout: "ignore",
    stderr: "pipe",
    env: {
      HERALD_LISTEN: `127.0.0.1:${port}`,
      LEPTOS_SITE_ROOT: siteRoot,
      HERALD_LOG: "warn",
      // Short reconnect delay so resume tests do not wait long.
      HERALD_RETRY: "500ms",
    },
  },
  projects: [
    {
      name: "chromium",
      use: {
        ...devices["Desktop Chrome"],
        launchOptions: {
          executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
          args: [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
          ],
        },
      },
    },
  ],
});
