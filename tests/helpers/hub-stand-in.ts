import crypto from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

// A small Hugging Face–compatible hub on 127.0.0.1: `/{owner}/{repo}/resolve/{revision}/{file}`
// answers 302 to a content URL (as the real hub redirects to its CDN) with the file's sha256
// in X-Linked-Etag; private repositories want `Authorization: Bearer <token>`.
//
// Dataset repositories too, on the real hub's paths: `/api/datasets/{owner}/{repo}/revision/{rev}`
// answers the commit sha and the files (`siblings[].rfilename`), and
// `/datasets/{owner}/{repo}/resolve/{rev or sha}/{path}` sends small files itself and redirects
// parquet and MP4 files to their content, as the hub does for files kept in LFS.

export interface HubStandInDataset {
  repo: string;
  revision?: string;
  files: Record<string, Buffer>;
  /** Sends each large file in small pieces this many ms apart, for cancel tests. */
  slowMs?: number;
}

export interface HubStandInFile {
  repo: string;
  revision?: string;
  filename: string;
  content: Buffer;
  /** Needs the token to resolve. */
  isPrivate?: boolean;
  /** Sends the content in small pieces this many ms apart, for timeout tests. */
  slowMs?: number;
}

export interface HubStandIn {
  url: string;
  token: string;
  /** Requests seen, with whether they carried the token. */
  requests: { path: string; query: string; hasToken: boolean; authorization: string | null }[];
  /** How many times each content was sent. */
  contentHits: Map<string, number>;
  add(file: HubStandInFile): void;
  /** Adds (or replaces) a dataset repository's revision; returns its commit sha. */
  addDataset(dataset: HubStandInDataset): string;
  close(): Promise<void>;
}

export async function startHubStandIn(files: HubStandInFile[] = []): Promise<HubStandIn> {
  const token = `hf_${crypto.randomBytes(12).toString("hex")}`;
  const byPath = new Map<string, HubStandInFile>();
  const byDigest = new Map<string, HubStandInFile>();
  const requests: HubStandIn["requests"] = [];
  const contentHits = new Map<string, number>();
  const sockets = new Set<import("node:net").Socket>();

  const add = (file: HubStandInFile) => {
    byPath.set(`/${file.repo}/resolve/${file.revision ?? "main"}/${file.filename}`, file);
    byDigest.set(crypto.createHash("sha256").update(file.content).digest("hex"), file);
  };
  files.forEach(add);
  const datasets = new Map<string, { sha: string; files: Record<string, Buffer>; slowMs?: number }>();
  const addDataset = (dataset: HubStandInDataset) => {
    const hash = crypto.createHash("sha1").update(dataset.repo);
    for (const [name, content] of Object.entries(dataset.files).sort()) hash.update(name).update(content);
    const sha = hash.digest("hex");
    const entry = { sha, files: dataset.files, slowMs: dataset.slowMs };
    datasets.set(`${dataset.repo}@${dataset.revision ?? "main"}`, entry);
    datasets.set(`${dataset.repo}@${sha}`, entry);
    for (const content of Object.values(dataset.files)) byDigest.set(crypto.createHash("sha256").update(content).digest("hex"), { repo: dataset.repo, filename: "", content, slowMs: dataset.slowMs });
    return sha;
  };

  const server = http.createServer((req, res) => {
    const target = new URL(req.url ?? "/", "http://x");
    const path = decodeURIComponent(target.pathname);
    const authorization = req.headers.authorization ?? null;
    requests.push({ path, query: target.search, hasToken: authorization === `Bearer ${token}`, authorization });
    const content = /^\/content\/([0-9a-f]{64})$/.exec(path);
    if (content) {
      const file = byDigest.get(content[1]);
      if (!file) return void res.writeHead(404).end("Entry not found");
      contentHits.set(content[1], (contentHits.get(content[1]) ?? 0) + 1);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": file.content.length });
      if (!file.slowMs) return void res.end(file.content);
      let offset = 0;
      const timer = setInterval(() => {
        if (res.destroyed || offset >= file.content.length) {
          clearInterval(timer);
          if (!res.destroyed) res.end();
          return;
        }
        res.write(file.content.subarray(offset, offset + 16));
        offset += 16;
      }, file.slowMs);
      res.on("close", () => clearInterval(timer));
      return;
    }
    const listing = /^\/api\/datasets\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path);
    if (listing) {
      const dataset = datasets.get(`${listing[1]}@${listing[2]}`);
      if (!dataset) return void res.writeHead(404, { "content-type": "application/json", "x-error-code": "RepoNotFound" }).end(JSON.stringify({ error: "Repository not found" }));
      return void res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ id: listing[1], sha: dataset.sha, private: false, siblings: Object.keys(dataset.files).sort().map((rfilename) => ({ rfilename })) }));
    }
    const resolve = /^\/datasets\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (resolve) {
      const dataset = datasets.get(`${resolve[1]}@${resolve[2]}`);
      const content = dataset?.files[resolve[3]];
      if (!content) return void res.writeHead(404, { "x-error-code": "EntryNotFound" }).end("Entry not found");
      if (!/\.(parquet|mp4)$/.test(resolve[3])) return void res.writeHead(200, { "content-type": "application/octet-stream", "content-length": content.length }).end(content);
      const sha256 = crypto.createHash("sha256").update(content).digest("hex");
      return void res.writeHead(302, { location: `/content/${sha256}`, "x-linked-etag": `"${sha256}"`, "x-linked-size": String(content.length) }).end();
    }
    const file = byPath.get(path);
    const repo = /^\/([^/]+\/[^/]+)\/resolve\//.exec(path)?.[1];
    const isRepoPrivate = [...byPath.values()].some((f) => f.repo === repo && f.isPrivate);
    if (isRepoPrivate && authorization !== `Bearer ${token}`) {
      return void res.writeHead(401, { "x-error-code": "RepoNotFound" }).end("Invalid credentials in Authorization header");
    }
    if (!file) return void res.writeHead(404, { "x-error-code": "EntryNotFound" }).end("Entry not found");
    const sha256 = crypto.createHash("sha256").update(file.content).digest("hex");
    res.writeHead(302, { location: `/content/${sha256}`, "x-linked-etag": `"${sha256}"`, "x-linked-size": String(file.content.length) }).end();
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    token,
    requests,
    contentHits,
    add,
    addDataset,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
