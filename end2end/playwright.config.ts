import { defineConfig, devices } from "@playwright/test";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

// The server under test is the real `herald` binary, started here by Playwright
// (scripts/test.sh builds it and picks a free port). Chromium is Debian's: nothing
// is downloaded.
const port = process.env.E2E_PORT ?? "3100";
const baseURL = `http://127.0.0.1:${port}`;
const here = __dirname;
const heraldBin = path.resolve(here, process.env.HERALD_BIN ?? "../target/debug/herald");
// The binary carries its web app (server/src/web/site.rs): every node starts in an
// empty directory, and reads a site directory only when HERALD_SITE_ROOT names one.
const siteRoot = process.env.HERALD_SITE_ROOT && path.resolve(here, process.env.HERALD_SITE_ROOT);
const emptyDir = fs.mkdtempSync(path.join(os.tmpdir(), "herald-e2e-"));

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

// And a node serving HTTPS (HTTP/2 by ALPN) with a certificate made here by openssl.
const tlsPort = process.env.E2E_TLS_PORT ?? "3104";
process.env.E2E_TLS_URL = `https://127.0.0.1:${tlsPort}`;
const certificate = path.join(emptyDir, "tls.crt");
const key = path.join(emptyDir, "tls.key");
execFileSync("openssl", [
  "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
  "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
  "-keyout", key, "-out", certificate,
], { stdio: "ignore" });

const heraldEnv = (listenPort: string) => ({
  HERALD_LISTEN: `127.0.0.1:${listenPort}`,
  ...(siteRoot ? { LEPTOS_SITE_ROOT: siteRoot } : {}),
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
      cwd: emptyDir,
      url: `${baseURL}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "ignore",
      stderr: "pipe",
      env: heraldEnv(port),
    },
    {
      command: `"${heraldBin}"`,
      cwd: emptyDir,
      url: `https://127.0.0.1:${tlsPort}/healthz`,
      ignoreHTTPSErrors: true,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: "ignore",
      stderr: "pipe",
      env: { ...heraldEnv(tlsPort), HERALD_TLS_CERT: certificate, HERALD_TLS_KEY: key },
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
      cwd: emptyDir,
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
      cwd: emptyDir,
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
