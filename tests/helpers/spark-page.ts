import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright";

// A bare page with three.js and Spark (the viewer's renderer) in Debian's Chromium with
// software WebGL, serving the files it is handed: for the benchmark's first frame and for
// reading our SPZ back with Spark's own parser.

export interface SplatReadout {
  count: number;
  centers: number[];
  scales: number[];
  quaternions: number[];
  opacities: number[];
  colors: number[];
}

const page = `<!doctype html><html><body style="margin:0"><canvas id="c" width="640" height="480"></canvas>
<script type="importmap">{"imports": {"three": "/three/three.module.js", "three/addons/": "/three-addons/", "@sparkjsdev/spark": "/spark/spark.module.js"}}</script>
<script type="module">
import * as THREE from "three";
import { PackedSplats, SparkRenderer, SplatMesh } from "@sparkjsdev/spark";
const canvas = document.getElementById("c");
const renderer = new THREE.WebGLRenderer({ canvas, antialias: false });
const scene = new THREE.Scene();
scene.add(new SparkRenderer({ renderer }));
const camera = new THREE.PerspectiveCamera(50, 640 / 480, 0.01, 100);
camera.position.set(0, 0, 4);
// From the request to the first frame's pixels read back.
window.firstFrame = async (url) => {
  const t0 = performance.now();
  const mesh = new SplatMesh({ url });
  await mesh.initialized;
  scene.add(mesh);
  renderer.render(scene, camera);
  const gl = renderer.getContext();
  gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, new Uint8Array(4));
  const splats = mesh.packedSplats?.numSplats ?? null;
  scene.remove(mesh);
  mesh.dispose();
  return { ms: performance.now() - t0, splats };
};
// Every splat as Spark decodes the file.
window.readSplats = async (url) => {
  const fileBytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  const packed = new PackedSplats({ fileBytes, fileName: url.split("/").pop() });
  await packed.initialized;
  const out = { count: packed.numSplats, centers: [], scales: [], quaternions: [], opacities: [], colors: [] };
  packed.forEachSplat((i, c, s, q, o, col) => {
    out.centers.push(c.x, c.y, c.z); out.scales.push(s.x, s.y, s.z); out.quaternions.push(q.x, q.y, q.z, q.w);
    out.opacities.push(o); out.colors.push(col.r, col.g, col.b);
  });
  return out;
};
window.ready = true;
</script></body></html>`;

export interface SparkPage {
  base: string;
  browser: Browser;
  /** A fresh tab with the page loaded: nothing cached, Spark started anew. */
  open(): Promise<Page>;
  close(): Promise<void>;
}

export async function startSparkPage(files: Record<string, Buffer>, root = process.cwd()): Promise<SparkPage> {
  const dirs: Record<string, string> = {
    "/three/": path.join(root, "node_modules/three/build/"),
    "/three-addons/": path.join(root, "node_modules/three/examples/jsm/"),
    "/spark/": path.join(root, "node_modules/@sparkjsdev/spark/dist/"),
  };
  const server = http.createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0]!;
    if (url === "/") return res.writeHead(200, { "content-type": "text/html" }).end(page);
    const file = files[url.slice(1)];
    if (file) return res.writeHead(200, { "content-type": "application/octet-stream", "content-length": file.length }).end(file);
    const prefix = Object.keys(dirs).find((p) => url.startsWith(p));
    const target = prefix ? path.resolve(dirs[prefix]!, `.${path.posix.normalize(`/${url.slice(prefix.length)}`)}`) : null;
    if (!target || !target.startsWith(dirs[prefix!]!) || !fs.existsSync(target) || !fs.statSync(target).isFile()) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": target.endsWith(".js") ? "text/javascript" : "application/octet-stream" }).end(fs.readFileSync(target));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-first-run", "--disable-background-networking"],
  });
  return {
    base,
    browser,
    async open() {
      const tab = await browser.newPage();
      await tab.goto(base);
      await tab.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
      return tab;
    },
    async close() {
      await browser.close();
      server.close();
    },
  };
}

export function readSplats(tab: Page, url: string): Promise<SplatReadout> {
  return tab.evaluate((u) => (window as unknown as { readSplats: (u: string) => Promise<SplatReadout> }).readSplats(u), url);
}

export function firstFrame(tab: Page, url: string): Promise<{ ms: number; splats: number | null }> {
  return tab.evaluate((u) => (window as unknown as { firstFrame: (u: string) => Promise<{ ms: number; splats: number | null }> }).firstFrame(u), url);
}
