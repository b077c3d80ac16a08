// End-to-end harness: real captures of a tiny GGUF (made by real llama-cpp-python), the real
// backend on a free port, and Debian's chromium driven by playwright-core.
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
export const REPO = resolve(here, "..", "..");
export const SCREENSHOTS = join(REPO, "docs", "screenshots");
export const PYTHON = process.env.SPECTRA_PYTHON ?? join(REPO, ".venv", "bin", "python");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export const STANDARD = "capture_tiny_standard.json";
export const FULL = "capture_tiny_full.json";
export const CHAT = "capture_tiny_chat.json";

/** Two captures of one tiny llama GGUF: `standard` (2 trials) and `full` (every node read); and `chat`, a
 * tiny llama with a chat template, its prompt sent in the template (template tokens marked). */
export function makeCaptures(dataDir) {
  const code = `
import sys
from spectra_vis import capture
from spectra_vis.testing.tiny_gguf import CHAT_TEMPLATE, write_tiny_model
d = sys.argv[1]
model = str(write_tiny_model(d + "/tiny.gguf"))
chat = str(write_tiny_model(d + "/tiny-chat.gguf", chat_template=CHAT_TEMPLATE))
capture(chat, ["What is the capital of France?"], preset="standard", max_tokens=4, out=d + "/${CHAT}")
capture(model, ["What is the capital of France?", "Say hi"], preset="standard", max_tokens=6, out=d + "/${STANDARD}")
capture(model, ["Hello there, how are you?"], preset="full", max_tokens=4, out=d + "/${FULL}")
`;
  execFileSync(PYTHON, ["-c", code, dataDir], { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  rmSync(join(dataDir, "tiny.gguf"));
  rmSync(join(dataDir, "tiny-chat.gguf"));
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.unref();
    s.on("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** The backend on a free port, up when it answers /api/health. `argsFor(port)`: Python's arguments
 * (default: backend/server.py on that port and data directory). */
export async function startBackend(dataDir, argsFor = (port) => ["backend/server.py", "--port", String(port), "--data-dir", dataDir]) {
  const port = await freePort();
  const proc = spawn(PYTHON, argsFor(port), {
    cwd: REPO,
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  proc.stderr.on("data", (d) => (log += d));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 150; i++) {
    if (proc.exitCode !== null) throw new Error(`backend exited (${proc.exitCode}): ${log}`);
    try {
      if ((await fetch(`${url}/api/health`)).ok) return { url, stop: () => proc.kill() };
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  proc.kill();
  throw new Error(`backend did not start on ${url}: ${log}`);
}

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    // WebGL through SwiftShader: headless chromium has no GPU.
    args: ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"],
  });
}

export function tempDir(prefix) {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** docs/screenshots/<name>.png, written atomically: ``take(path)`` makes the screenshot at path. */
export async function saveScreenshot(name, take) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const tmp = join(SCREENSHOTS, `.${name}.tmp.png`);
  await take(tmp);
  renameSync(tmp, join(SCREENSHOTS, `${name}.png`));
}

/** Screenshot of one element into docs/screenshots/<name>.png. */
export async function shoot(locator, name) {
  await saveScreenshot(name, (path) => locator.screenshot({ path }));
}

/** The viewer on a real backend over ``dataDir``: its page, with the page's errors and every HTTP
 * response >= 400 it got collected. */
export async function openViewer(dataDir) {
  const backend = await startBackend(dataDir);
  const browser = await launchBrowser();
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  const errors = [], badResponses = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("response", (r) => { if (r.status() >= 400) badResponses.push(`${r.status()} ${r.url()}`); });
  await page.goto(backend.url);
  await page.locator("[data-testid=captures-panel]").waitFor();
  const close = async () => {
    await browser.close();
    backend.stop();
  };
  return { backend, browser, page, errors, badResponses, close };
}

/** Open a capture from the captures panel; its capture id, once the API says it is current. */
export async function openCapture(page, backendUrl, name) {
  await page.locator(`.files li[data-path="${name}"] button`).click();
  await page.locator(`.files li.current[data-path="${name}"]`).waitFor();
  const caps = await getJSON(`${backendUrl}/api/captures`);
  const cur = caps.captures.find((c) => c.capture_id === caps.current);
  if (cur?.path !== name) throw new Error(`opened ${name} but the current capture is ${cur?.path}`);
  return cur.capture_id;
}

export async function getJSON(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}

export async function postJSON(url, body) {
  const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}
