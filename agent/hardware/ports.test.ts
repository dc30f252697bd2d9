import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { explainOpenError, findPortHolders, findUnpluggedPort, listSerialPorts } from "./ports";

const root = fs.mkdtempSync(path.join(os.tmpdir(), "gantry-ports-"));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/**
 * A /dev and a /sys/class/tty laid out as Linux does for USB serial adapters: the tty's
 * `device` link points into the USB interface, whose parent holds idVendor and friends.
 */
function makeTree(): { devDir: string; sysDir: string } {
  const devDir = path.join(root, "dev");
  const sysDir = path.join(root, "sys/class/tty");
  const adapters = [
    { tty: "ttyACM0", vid: "1a86", pid: "55d3", serial: "5A46083062", maker: "QinHeng Electronics", product: "USB Single Serial", byId: "usb-1a86_USB_Single_Serial_5A46083062-if00" },
    { tty: "ttyUSB0", vid: "0403", pid: "6014", serial: "FT6Z5XYA", maker: "FTDI", product: "USB <-> Serial Converter", byId: "usb-FTDI_USB__-__Serial_Converter_FT6Z5XYA-if00-port0" },
    { tty: "ttyUSB1", vid: "1a86", pid: "7523", serial: null, maker: null, product: "USB Serial", byId: "usb-1a86_USB_Serial-if00-port0" },
  ];
  fs.mkdirSync(path.join(devDir, "serial/by-id"), { recursive: true });
  for (const [i, a] of adapters.entries()) {
    fs.writeFileSync(path.join(devDir, a.tty), "");
    fs.symlinkSync(`../../${a.tty}`, path.join(devDir, "serial/by-id", a.byId));
    const usbDev = path.join(root, `sys/devices/pci0000:00/usb1/1-${i + 1}`);
    const iface = path.join(usbDev, `1-${i + 1}:1.0`, a.tty);
    fs.mkdirSync(iface, { recursive: true });
    for (const [k, v] of [["idVendor", a.vid], ["idProduct", a.pid], ["serial", a.serial], ["manufacturer", a.maker], ["product", a.product]] as const) if (v) fs.writeFileSync(path.join(usbDev, k), `${v}\n`);
    fs.mkdirSync(path.join(sysDir, a.tty), { recursive: true });
    fs.symlinkSync(iface, path.join(sysDir, a.tty, "device"));
  }
  fs.writeFileSync(path.join(devDir, "ttyS0"), "");
  fs.writeFileSync(path.join(devDir, "tty1"), "");
  return { devDir, sysDir };
}

describe("serial ports", () => {
  const { devDir, sysDir } = makeTree();

  it("lists USB serial ports with their by-id link, VID:PID, serial number and maker", () => {
    const ports = listSerialPorts({ devDir, sysDir });
    expect(ports.map((p) => path.basename(p.path))).toEqual(["ttyACM0", "ttyUSB0", "ttyUSB1"]);
    expect(ports[0]).toMatchObject({ vendorId: "1a86", productId: "55d3", serialNumber: "5A46083062", manufacturer: "QinHeng Electronics", adapter: expect.stringMatching(/CH343/), byId: path.join(devDir, "serial/by-id/usb-1a86_USB_Single_Serial_5A46083062-if00") });
    expect(ports[1]).toMatchObject({ vendorId: "0403", productId: "6014", serialNumber: "FT6Z5XYA", adapter: expect.stringMatching(/FT232H/) });
    expect(ports[2]).toMatchObject({ vendorId: "1a86", productId: "7523", serialNumber: null, adapter: "CH340" });
  });

  it("finds the port that disappeared when the arm was unplugged", () => {
    const before = listSerialPorts({ devDir, sysDir });
    fs.rmSync(path.join(devDir, "ttyUSB0"));
    const after = listSerialPorts({ devDir, sysDir });
    expect(findUnpluggedPort(before, after)).toMatchObject({ port: { path: path.join(devDir, "ttyUSB0"), serialNumber: "FT6Z5XYA" } });
    expect(findUnpluggedPort(after, after)).toMatchObject({ port: null, reason: expect.stringMatching(/No port disappeared/) });
    expect(findUnpluggedPort(before, [])).toMatchObject({ port: null, reason: expect.stringMatching(/3 ports disappeared/) });
  });
});

describe("a port that will not open", () => {
  it("says to join dialout on permission denied", async () => {
    const err = Object.assign(new Error("Error: Permission denied, cannot open /dev/ttyACM0"), { code: undefined });
    expect(await explainOpenError("/dev/ttyACM0", err)).toMatch(/permission denied\. Add this user to the dialout group \(sudo usermod -aG dialout \$USER\)/);
  });

  it("names the process that holds a busy port, from /proc", async () => {
    const file = path.join(root, "ttyBusy");
    fs.writeFileSync(file, "");
    const fd = fs.openSync(file, "r");
    const child = spawn("sleep", ["30"], { stdio: [fd, "ignore", "ignore"] });
    fs.closeSync(fd);
    try {
      await new Promise((r) => child.once("spawn", r));
      await new Promise((r) => setTimeout(r, 100));
      expect(findPortHolders(file)).toContainEqual({ pid: child.pid, command: "sleep" });
      const message = await explainOpenError(file, new Error("Error Resource temporarily unavailable Cannot lock port"));
      expect(message).toMatch(new RegExp(`another program has it open\\. It is held by sleep \\(pid ${child.pid}\\)\\. Close the other program`));
    } finally {
      child.kill("SIGTERM");
    }
  });

  it("says when the port is this agent's own, held by another of its commands", async () => {
    const file = path.join(root, "ttyOwn");
    fs.writeFileSync(file, "");
    const fd = fs.openSync(file, "r");
    try {
      expect(await explainOpenError(file, new Error("Error Resource temporarily unavailable Cannot lock port"))).toMatch(/this agent is using it for another command \(live joints or a range recording\): stop that first/);
    } finally {
      fs.closeSync(fd);
    }
  });

  it("points at brltty when a CH340 port vanishes and brltty runs", async () => {
    const proc = path.join(root, "proc");
    fs.mkdirSync(path.join(proc, "812"), { recursive: true });
    fs.writeFileSync(path.join(proc, "812/comm"), "brltty\n");
    const err = Object.assign(new Error("Error: No such file or directory, cannot open /dev/ttyUSB0"), { code: "ENOENT" });
    expect(await explainOpenError("/dev/ttyUSB0", err, { procDir: proc })).toMatch(/brltty is running .* remove it with sudo apt remove brltty/);
  });
});
