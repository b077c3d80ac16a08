// Browser test of uploading a format 2.1 capture with its vectors companion (capture_X.json and
// capture_X.vectors.safetensors): real backend over an empty data directory, a real standard capture of
// a tiny GGUF made in another temporary directory (so the upload is what puts the files in the data
// directory), real chromium. What the page sent and what the server saved are read back here.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PYTHON, REPO, getJSON, openViewer, tempDir } from "./harness.mjs";

const PAIR = "capture_tiny_pair.json";
const VECTORS = "capture_tiny_pair.vectors.safetensors";
const nth = (n, suffix) => `capture_tiny_pair-${n}${suffix}`; // the server's next free names

let srcDir, dataDir, viewer, backend, page, errors, badResponses;

function makePair(dir) {
  const code = `
import sys
from spectra_vis import capture
from spectra_vis.testing.tiny_gguf import write_tiny_model
model = str(write_tiny_model(sys.argv[1] + "/tiny-pair.gguf"))
capture(model, ["What is the capital of France?"], preset="standard", max_tokens=4, out=sys.argv[1] + "/${PAIR}")
`;
  execFileSync(PYTHON, ["-c", code, dir], { cwd: REPO, stdio: ["ignore", "ignore", "inherit"] });
  if (!existsSync(join(dir, VECTORS))) throw new Error(`the standard capture wrote no ${VECTORS}`);
}

// the saved files, without the index the server writes beside a capture when it loads it
const dataFiles = () =>
  readdirSync(dataDir).filter((n) => !n.startsWith(".") && !n.endsWith(".index.safetensors")).sort();

/** Every upload form the page sends, as {field: file name}, kept in the page (chromium gives the
 * protocol no body for a form with files, so the form is read before it leaves). The captures panel
 * sends it through XMLHttpRequest (its upload reports progress); fetch is watched too. */
async function spyOnUploads() {
  await page.evaluate(() => {
    const send = window.fetch.bind(window);
    window.__uploads = [];
    const note = (url, body) => {
      if (String(url).endsWith("/api/upload") && body instanceof FormData) {
        window.__uploads.push(Object.fromEntries([...body.entries()].map(([k, v]) => [k, v.name])));
      }
    };
    window.fetch = (url, init) => {
      note(url, init?.body);
      return send(url, init);
    };
    const open = XMLHttpRequest.prototype.open, xsend = XMLHttpRequest.prototype.send;
    XMLHttpRequest.prototype.open = function (method, url, ...rest) {
      this.__url = url;
      return open.call(this, method, url, ...rest);
    };
    XMLHttpRequest.prototype.send = function (body) {
      note(this.__url, body);
      return xsend.call(this, body);
    };
  });
}

/** What the page sends next to POST /api/upload and the server's reply, once ``act`` has run. */
async function uploadBy(act) {
  const before = await page.evaluate(() => window.__uploads.length);
  const reply = page.waitForResponse((r) => r.url().endsWith("/api/upload") && r.request().method() === "POST");
  await act();
  const resp = await reply;
  assert.equal(resp.status(), 200, await resp.text());
  const sent = await page.evaluate(() => window.__uploads);
  assert.equal(sent.length, before + 1);
  return { body: await resp.json(), sent: sent[before] };
}

async function currentIs(name, body) {
  await page.locator(`.files li.current[data-path="${name}"]`).waitFor();
  const caps = await getJSON(`${backend.url}/api/captures`);
  assert.equal(caps.current, body.capture_id);
  assert.equal(caps.captures.find((c) => c.capture_id === caps.current).path, name);
  return body.capture_id;
}

before(async () => {
  srcDir = tempDir("spectra-e2e-upload-src-");
  makePair(srcDir);
  dataDir = tempDir("spectra-e2e-upload-");
  viewer = await openViewer(dataDir);
  ({ backend, page, errors, badResponses } = viewer);
  await spyOnUploads();
});

after(async () => {
  await viewer?.close();
});

describe("upload of a capture with its vectors file", () => {
  test("the file input takes both: both are sent, saved and the vectors attached", async () => {
    assert.deepEqual(dataFiles(), []);
    const input = page.locator("[data-testid=upload-input]");
    assert.equal(await input.getAttribute("multiple"), "");
    assert.ok((await input.getAttribute("accept")).split(",").includes(".safetensors"));
    const { body, sent } = await uploadBy(() => input.setInputFiles([join(srcDir, PAIR), join(srcDir, VECTORS)]));
    assert.deepEqual(sent, { file: PAIR, vectors: VECTORS });
    assert.equal(body.saved_as, PAIR);
    assert.deepEqual(body.notices, []); // without the companion: "no vectors file was uploaded ..." (next test)
    const notice = page.locator("[data-testid=captures-notice]");
    await notice.waitFor();
    assert.equal(await notice.textContent(), `Uploaded ${PAIR} as ${PAIR} and its vectors ${VECTORS} as ${VECTORS}`);
    // The upload put both files there, the companion byte for byte, and the capture names it.
    assert.deepEqual(dataFiles(), [PAIR, VECTORS].sort());
    assert.ok(readFileSync(join(dataDir, VECTORS)).equals(readFileSync(join(srcDir, VECTORS))));
    assert.equal(JSON.parse(readFileSync(join(dataDir, PAIR), "utf8")).vectors.file, VECTORS);
    // The viewer opened it: current in the list and the API, its logit lens shown, no notices.
    const cid = await currentIs(PAIR, body);
    assert.equal((await fetch(`${backend.url}/api/trials/0/lens?capture_id=${cid}`)).status, 200);
    await page.locator(`[data-testid=logit-lens][data-capture-id="${cid}"] .logit-lens-cell`).first().waitFor();
    assert.equal(await page.locator("[data-testid=capture-notices]").count(), 0);
  });

  test("the capture alone is loaded with statistics only, and the server's notice is shown", async () => {
    const input = page.locator("[data-testid=upload-input]");
    const { body, sent } = await uploadBy(() => input.setInputFiles([join(srcDir, PAIR)]));
    assert.deepEqual(sent, { file: PAIR });
    assert.equal(body.saved_as, nth(1, ".json"));
    assert.equal(body.notices.length, 1);
    assert.match(body.notices[0], /no vectors file was uploaded/);
    assert.equal(await page.locator("[data-testid=captures-notice]").textContent(), `Uploaded ${PAIR} as ${nth(1, ".json")}`);
    await currentIs(nth(1, ".json"), body);
    const shown = page.locator(`[data-testid=capture-notices][data-path="${nth(1, ".json")}"] li`);
    await shown.first().waitFor();
    assert.deepEqual(await shown.allTextContents(), body.notices);
    assert.ok(!existsSync(join(dataDir, nth(1, ".vectors.safetensors"))));
  });

  test("dropping both files goes the same way; the companion is saved under the capture's new name", async () => {
    const files = [PAIR, VECTORS].map((name) => ({ name, b64: readFileSync(join(srcDir, name)).toString("base64") }));
    const { body, sent } = await uploadBy(() =>
      page.locator("[data-testid=dropzone]").evaluate((el, fs) => {
        const dt = new DataTransfer();
        for (const f of fs) dt.items.add(new File([Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0))], f.name));
        el.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
      }, files.reverse()), // the companion first: the order does not matter
    );
    assert.deepEqual(sent, { file: PAIR, vectors: VECTORS });
    assert.equal(body.saved_as, nth(2, ".json"));
    assert.deepEqual(body.notices, []);
    assert.equal(
      await page.locator("[data-testid=captures-notice]").textContent(),
      `Uploaded ${PAIR} as ${nth(2, ".json")} and its vectors ${VECTORS} as ${nth(2, ".vectors.safetensors")}`,
    );
    assert.ok(readFileSync(join(dataDir, nth(2, ".vectors.safetensors"))).equals(readFileSync(join(srcDir, VECTORS))));
    assert.equal(JSON.parse(readFileSync(join(dataDir, nth(2, ".json")), "utf8")).vectors.file, nth(2, ".vectors.safetensors"));
    await currentIs(nth(2, ".json"), body);
    assert.equal(await page.locator("[data-testid=capture-notices]").count(), 0);
  });

  test("the companion alone is refused in the page: the error says what to do, nothing is sent or added", async () => {
    const before = dataFiles();
    const listed = (await getJSON(`${backend.url}/api/files`)).files.map((f) => f.name).sort();
    const sent = await page.evaluate(() => window.__uploads.length);
    let uploads = 0;
    const count = (r) => { if (r.url().endsWith("/api/upload")) uploads += 1; };
    page.on("request", count);
    await page.locator("[data-testid=upload-input]").setInputFiles([join(srcDir, VECTORS)]);
    const alert = page.locator("[data-testid=captures-error]");
    await alert.waitFor();
    assert.equal(
      await alert.textContent(),
      `${VECTORS}: a vectors file alone cannot be uploaded; drop the capture .json together with its .vectors.safetensors file`,
    );
    assert.equal(await page.locator("[data-testid=captures-notice]").count(), 0);
    await page.waitForTimeout(300); // a request sent anyway would have started by now
    page.off("request", count);
    assert.equal(uploads, 0);
    assert.equal(await page.evaluate(() => window.__uploads.length), sent);
    assert.deepEqual(dataFiles(), before);
    assert.deepEqual((await getJSON(`${backend.url}/api/files`)).files.map((f) => f.name).sort(), listed);
    assert.equal(await page.locator(".files li").count(), listed.length);
  });

  test("no page errors and no failed requests", async () => {
    assert.deepEqual(errors, []);
    assert.deepEqual(badResponses, []);
  });
});
