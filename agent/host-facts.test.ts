import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { hostFactsSchema } from "../server/hardware/hardware.schemas";
import { collectHostFacts, listSerialAdapters } from "./host-facts";

describe("host facts", () => {
  it("lists USB serial adapters with their stable by-id names, and nothing else", () => {
    const dev = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-dev-"));
    for (const node of ["ttyACM0", "ttyUSB1", "ttyS0", "null"]) fs.writeFileSync(path.join(dev, node), "");
    fs.mkdirSync(path.join(dev, "serial", "by-id"), { recursive: true });
    fs.symlinkSync(path.join(dev, "ttyACM0"), path.join(dev, "serial", "by-id", "usb-1a86_USB_Single_Serial_5A46-if00"));
    fs.symlinkSync(path.join(dev, "ttyACM9"), path.join(dev, "serial", "by-id", "usb-unplugged-if00"));
    expect(listSerialAdapters(dev)).toEqual([
      { path: path.join(dev, "ttyACM0"), byId: path.join(dev, "serial", "by-id", "usb-1a86_USB_Single_Serial_5A46-if00") },
      { path: path.join(dev, "ttyUSB1"), byId: null },
    ]);
  });

  it("states why Python is absent rather than leaving it out", async () => {
    const before = process.env.GANTRY_PYTHON;
    process.env.GANTRY_PYTHON = "/nonexistent/python3";
    try {
      const facts = hostFactsSchema.parse(await collectHostFacts("test"));
      expect(facts.python).toEqual({ version: null, note: expect.stringMatching(/not installed/) });
      expect(facts.lerobot).toEqual({ version: null, note: "no Python to look in" });
    } finally {
      if (before === undefined) delete process.env.GANTRY_PYTHON;
      else process.env.GANTRY_PYTHON = before;
    }
  });
});
