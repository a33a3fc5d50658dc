// Headless-browser test of the roadhex web map against a running node.
//
//   node tests/web/map_test.mjs BASE_URL LAT LON SCREENSHOT.png
//
// Opens BASE_URL/#16/LAT/LON in Debian's chromium (software WebGL, no GPU), waits for the map's first
// idle, checks that no page error was thrown, that vector tiles were answered 200 and that coverage
// cells were drawn, then clicks the map centre (a published frame is expected at LAT/LON) and waits
// for the frame's JPEG to load in the side panel. Writes SCREENSHOT.png, prints one JSON line
// {tile_responses, coverage_features, frame_id, image_width} and exits 0; on any failure prints the
// reason to stderr and exits 1. Every wait is bounded by one overall deadline (ROADHEX_WEB_TIMEOUT_MS,
// default 30000). playwright-core comes from deploy/web.sh's install (ROADHEX_WEB_DIR).
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";

const WEB_DIR = process.env.ROADHEX_WEB_DIR || join(homedir(), ".cache", "roadhex", "web");
const CHROMIUM = process.env.ROADHEX_CHROMIUM || "/usr/bin/chromium";
const TIMEOUT_MS = Number(process.env.ROADHEX_WEB_TIMEOUT_MS || 30000);
const COVERAGE_LAYER = "coverage-fill";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  // WebGL without a GPU: ANGLE on SwiftShader (CPU). Chromium ≥ 137 no longer falls back to
  // SwiftShader for WebGL on its own, so it must be allowed explicitly.
  "--use-gl=angle",
  "--use-angle=swiftshader",
  "--enable-unsafe-swiftshader",
];

function fail(msg) {
  process.stderr.write(`map_test: ${msg}\n`);
  process.exit(1);
}

const [baseArg, latArg, lonArg, shotPath] = process.argv.slice(2);
if (!baseArg || !latArg || !lonArg || !shotPath) {
  fail("usage: node tests/web/map_test.mjs BASE_URL LAT LON SCREENSHOT.png");
}
const lat = Number(latArg);
const lon = Number(lonArg);
if (!Number.isFinite(lat) || !Number.isFinite(lon) || Math.abs(lat) > 90 || Math.abs(lon) > 180) {
  fail(`bad coordinates ${latArg} ${lonArg}`);
}
const base = baseArg.replace(/\/+$/, "");

let chromium;
try {
  ({ chromium } = createRequire(join(WEB_DIR, "package.json"))("playwright-core"));
} catch (e) {
  fail(`playwright-core not found under ${WEB_DIR} (run deploy/web.sh): ${e.message}`);
}

const deadline = Date.now() + TIMEOUT_MS;
const left = () => Math.max(1, deadline - Date.now());

let browser;
// Hard stop: whatever hangs, the process ends within the deadline (plus a little for cleanup).
const watchdog = setTimeout(() => {
  process.stderr.write(`map_test: timed out after ${TIMEOUT_MS} ms\n`);
  process.exit(1);
}, TIMEOUT_MS + 5000);

async function run() {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: left(),
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.setDefaultTimeout(left());

  const pageErrors = [];
  const consoleErrors = [];
  const tileStatus = {};
  let tileResponses = 0;
  page.on("pageerror", (e) => pageErrors.push(String(e && e.message ? e.message : e)));
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  page.on("response", (r) => {
    const path = new URL(r.url()).pathname;
    // Vector tiles are /tiles/{layer}/{z}/{x}/{y}.mvt (TileJSON documents are not counted).
    if (/\/tiles\/[^/]+\/\d+\/\d+\/\d+/.test(path)) {
      tileStatus[r.status()] = (tileStatus[r.status()] || 0) + 1;
      if (r.status() === 200) tileResponses += 1;
    }
  });
  const context = () =>
    ` (page errors: ${JSON.stringify(pageErrors)}; console errors: ${JSON.stringify(consoleErrors.slice(0, 5))}; tile statuses: ${JSON.stringify(tileStatus)})`;

  const url = `${base}/#16/${lat}/${lon}`;
  const resp = await page.goto(url, { waitUntil: "load", timeout: left() });
  if (!resp || !resp.ok()) throw new Error(`GET ${url}: HTTP ${resp ? resp.status() : "no response"}`);

  try {
    await page.waitForFunction(() => window.roadhexReady === true, null, { timeout: left(), polling: 100 });
  } catch {
    const webgl = await page.evaluate(() => !!document.createElement("canvas").getContext("webgl2")).catch(() => "?");
    throw new Error(`map never became idle (webgl2: ${webgl})` + context());
  }
  if (pageErrors.length) throw new Error("page errors" + context());
  if (tileResponses < 1) throw new Error("no tile request was answered 200" + context());

  const coverageFeatures = await page.evaluate(
    (layer) => window.roadhexMap.queryRenderedFeatures({ layers: [layer] }).length,
    COVERAGE_LAYER,
  );
  if (!(coverageFeatures > 0)) throw new Error(`no ${COVERAGE_LAYER} feature rendered` + context());

  // The map fills the window; click the pixel of the map's centre (= LAT/LON).
  const at = await page.evaluate(() => {
    const m = window.roadhexMap;
    const p = m.project(m.getCenter());
    const r = m.getCanvas().getBoundingClientRect();
    return { x: r.left + p.x, y: r.top + p.y };
  });
  await page.mouse.click(at.x, at.y);

  const outcome = await page
    .waitForFunction(
      () => {
        if (document.getElementById("frame-none")) return { none: true };
        const img = document.getElementById("frame-image");
        if (!img) return false;
        if (img.getAttribute("data-error")) return { error: img.getAttribute("src") };
        if (img.complete && img.naturalWidth > 0) {
          return { id: img.getAttribute("data-frame-id"), width: img.naturalWidth };
        }
        return false;
      },
      null,
      { timeout: left(), polling: 100 },
    )
    .then((h) => h.jsonValue())
    .catch(() => null);
  if (!outcome) throw new Error("clicking the centre did not show a frame image in time" + context());
  if (outcome.none) throw new Error(`clicking the centre found no frame near ${lat},${lon}` + context());
  if (outcome.error) throw new Error(`frame image ${outcome.error} failed to load` + context());
  if (pageErrors.length) throw new Error("page errors after the click" + context());

  await page.screenshot({ path: shotPath, timeout: left() });
  return { tile_responses: tileResponses, coverage_features: coverageFeatures, frame_id: outcome.id, image_width: outcome.width };
}

let code = 0;
try {
  const result = await run();
  process.stdout.write(JSON.stringify(result) + "\n");
} catch (e) {
  process.stderr.write(`map_test: ${e && e.message ? e.message : e}\n`);
  code = 1;
} finally {
  if (browser) await browser.close().catch(() => {});
  clearTimeout(watchdog);
}
process.exit(code);
