import net from "node:net";
import { describe, expect, it } from "vitest";
import { createDb } from "../db";
import { isDatabaseUnavailable, OutageLog, shortReason } from "./availability";

// Real failures: Prisma and a bare socket connecting to a port nothing listens on.

const refusedSocketError = () =>
  new Promise<Error>((resolve) => {
    const socket = net.connect(1, "127.0.0.1");
    socket.once("error", resolve);
  });

describe("telling an unreachable database from other failures", () => {
  it("knows Prisma's unreachable database, and says it in one line", async () => {
    const db = createDb("postgresql://nobody@127.0.0.1:1/none", 1);
    const error = await db.job.findFirst().catch((e: unknown) => e);
    await db.$disconnect();
    expect(isDatabaseUnavailable(error)).toBe(true);
    expect(shortReason(error)).toBe("Can't reach database server at 127.0.0.1:1");
  });

  it("takes a bare refused connection for the database only where nothing else is dialled", async () => {
    const error = await refusedSocketError();
    // In a job, a refused connection is as likely a device's SSH port: not the database.
    expect(isDatabaseUnavailable(error)).toBe(false);
    expect(isDatabaseUnavailable(error, { socketErrors: true })).toBe(true);
    expect(isDatabaseUnavailable(new Error("Device jetson-3 refused the SSH key"))).toBe(false);
  });

  it("logs an outage once, and its end once", () => {
    const lines: string[] = [];
    const outage = new OutageLog("Worker", (m) => lines.push(m));
    outage.recovered();
    for (let i = 0; i < 3; i++) outage.failed(new Error("Connection terminated unexpectedly"));
    outage.recovered();
    outage.recovered();
    expect(lines).toEqual([
      "Worker: cannot reach the database (Connection terminated unexpectedly); carrying on and retrying, and saying here when it is back",
      expect.stringMatching(/^Worker: the database is reachable again after 0 s \(3 failed attempts meanwhile\)$/),
    ]);
  });
});
