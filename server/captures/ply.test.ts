import { describe, expect, it } from "vitest";
import { parsePly, parsePlyHeader, writePly } from "./ply";
import { randomCloud } from "./test-clouds";

const head = (lines: string[]) => Buffer.from(["ply", ...lines, "end_header", ""].join("\n"), "latin1");
const props = (names: string[]) => names.map((n) => `property float ${n}`);
const splatProps = props(["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]);

describe("PLY parsing", () => {
  it("reads a gsplat-style file with any property order and extra properties", () => {
    const cloud = randomCloud(10, 1, 2);
    const ply = parsePly(writePly(cloud));
    expect(ply).toMatchObject({ count: 10, shDegree: 1 });
    expect(Array.from(ply.sh)).toEqual(Array.from(cloud.sh));
    expect(Array.from(ply.rotations)).toEqual(Array.from(cloud.rotations));
    const shuffled = Buffer.concat([
      head(["format binary_little_endian 1.0", "element vertex 1", "property uchar red", ...props(["nx", "ny", "nz"]), ...[...splatProps].reverse()]),
      Buffer.alloc(1 + 17 * 4),
    ]);
    expect(parsePly(shuffled)).toMatchObject({ count: 1, shDegree: 0 });
  });

  it("refuses hostile and unsupported input with a message a person can act on", () => {
    const fmt = "format binary_little_endian 1.0";
    const refuse = (file: Buffer, message: RegExp) => expect(() => parsePly(file)).toThrow(message);
    refuse(Buffer.concat([head([fmt, `element vertex ${2 ** 31}`, ...splatProps]), Buffer.alloc(56)]), /claims 2147483648 splats, more than the limit/);
    const good = writePly(randomCloud(4, 3, 1));
    refuse(good.subarray(0, good.length - 10), /cut short.*upload it again/);
    refuse(Buffer.concat([good, Buffer.alloc(4)]), /bytes after its 4 declared splats/);
    const nan = Buffer.from(good);
    nan.writeFloatLE(NaN, nan.length - 4);
    refuse(nan, /Splat 3 .* NaN or infinite/);
    const inf = Buffer.from(good);
    inf.writeFloatLE(Infinity, good.indexOf("end_header\n") + 11);
    refuse(inf, /Splat 0 .* NaN or infinite/);
    refuse(head(["format ascii 1.0", "element vertex 0", ...splatProps]), /ASCII.*binary_little_endian/);
    refuse(head(["format binary_big_endian 1.0", "element vertex 0", ...splatProps]), /big-endian.*binary_little_endian/);
    refuse(head([fmt, "element vertex 0", ...splatProps.slice(0, 6)]), /lacks the splat properties opacity, scale_0/);
    refuse(head([fmt, "element vertex 0", ...splatProps, ...props(["f_rest_0", "f_rest_1"])]), /2 f_rest coefficients; expected 0, 9, 24 or 45/);
    refuse(Buffer.concat([Buffer.from("ply\nformat binary_little_endian 1.0\n"), Buffer.alloc(200_000, 0x20)]), /header is longer than 64 KiB/);
    refuse(Buffer.from("PK\x03\x04"), /not a PLY/);
    refuse(head([fmt, "element vertex 0", "property double x", ...splatProps.slice(1)]), /"x" is double; splat properties must be float/);
    refuse(head([fmt, "element vertex 0", ...splatProps, "element face 3", "property list uchar int vertex_indices"]), /"face" element/);
    refuse(head([fmt, "element chunk 1", ...props(["min_x", "max_x"]), "element vertex 256", "property uint packed_position"]), /compressed PLY.*uncompressed splat PLY or an SPZ/);
  });

  it("reads a header whose lines end in CRLF, as a file written on Windows has", () => {
    const cloud = randomCloud(5, 0, 3);
    const file = writePly(cloud);
    const end = file.indexOf("end_header\n") + "end_header\n".length;
    const crlf = Buffer.concat([Buffer.from(file.subarray(0, end).toString("latin1").replace(/\n/g, "\r\n"), "latin1"), file.subarray(end)]);
    const ply = parsePly(crlf);
    expect(ply.count).toBe(5);
    expect(Array.from(ply.positions)).toEqual(Array.from(cloud.positions));
  });

  it("checks the header against the size before reading the body", () => {
    const file = writePly(randomCloud(1000, 3, 4));
    const header = parsePlyHeader(file.subarray(0, 4096), file.length);
    expect(header).toMatchObject({ count: 1000, shDegree: 3, stride: 59 * 4 });
    expect(() => parsePlyHeader(file.subarray(0, 4096), file.length - 1)).toThrow(/cut short/);
  });
});
