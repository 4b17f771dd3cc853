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

// Two more nodes share one Redis (Debian's redis-server, started here too) for the
// cluster spec; the node URLs are exported for it.
const redisPort = process.env.E2E_REDIS_PORT ?? "3190";
const nodePorts = [process.env.E2E_NODE_A_PORT ?? "3101", process.env.E2E_NODE_B_PORT ?? "3102"];
const nodeURLs = nodePorts.map((nodePort) => `http://127.0.0.1:${nodePort}`);
process.env.E2E_NODE_URLS = nodeURLs.join(" ");

// And a secured node: subscriber tokens and publish keys required.
const securePort = process.env.E2E_SECURE_PORT ?? "3103";
process.env.E2E_SECURE_URL = `http://127.0.0.1:${securePort}`;
process.env.E2E_SUBSCRIBER_SECRET = "e2e-subscriber-secret-0123456789";
process.env.E2E_PUBLISH_KEY = "e2e-publish-key-0123456789";

const heraldEnv = (listenPort: string) => ({
  HERALD_LISTEN: `127.0.0.1:${listenPort}`,
  LEPTOS_SITE_ROOT: siteRoot,
  HERALD_LOG: "warn",
  // Short reconnect delay so resume tests do not wait long.
  HERALD_RETRY: "500ms",
});

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
  webServer: [
    {
      command: `"${heraldBin}"`,
      url: `${baseURL}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "ignore",
      stderr: "pipe",
      env: heraldEnv(port),
    },
    {
      command: `redis-server --port ${redisPort} --bind 127.0.0.1 --save "" --appendonly no`,
      port: Number(redisPort),
      reuseExistingServer: false,
      timeout: 30_000,
      stdout: "ignore",
      stderr: "pipe",
    },
    {
      command: `"${heraldBin}"`,
      url: `http://127.0.0.1:${securePort}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "ignore",
      stderr: "pipe",
      env: {
        ...heraldEnv(securePort),
        HERALD_SUBSCRIBER_SECRET: process.env.E2E_SUBSCRIBER_SECRET,
        HERALD_PUBLISH_KEYS: process.env.E2E_PUBLISH_KEY,
      },
    },
    ...nodePorts.map((nodePort, index) => ({
      command: `"${heraldBin}"`,
      url: `http://127.0.0.1:${nodePort}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "ignore" as const,
      stderr: "pipe" as const,
      env: {
        ...heraldEnv(nodePort),
        HERALD_REDIS_URL: `redis://127.0.0.1:${redisPort}`,
        HERALD_REDIS_PREFIX: "e2e",
        HERALD_NODE_ID: `node-${"ab"[index]}`,
      },
    })),
  ],
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
