import zlib from "node:zlib";

// A PNG decoder for screenshots (8-bit greyscale, RGB or RGBA, not interlaced — what Chromium
// writes), so browser tests can compare pixels without another dependency.

export interface DecodedPng {
  width: number;
  height: number;
  /** RGBA, 4 bytes a pixel. */
  pixels: Uint8Array;
}

export function decodePng(png: Buffer): DecodedPng {
  if (png.readUInt32BE(0) !== 0x89504e47) throw new Error("not a PNG");
  let offset = 8;
  let width = 0;
  let height = 0;
  let colorType = 0;
  const idat: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString("latin1", offset + 4, offset + 8);
    const data = png.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const depth = data[8];
      colorType = data[9]!;
      if (depth !== 8 || data[12] !== 0 || ![0, 2, 6].includes(colorType)) throw new Error(`unsupported PNG (depth ${depth}, colour type ${colorType}, interlace ${data[12]})`);
    } else if (type === "IDAT") idat.push(data);
    else if (type === "IEND") break;
    offset += 12 + length;
  }
  const channels = colorType === 6 ? 4 : colorType === 2 ? 3 : 1;
  const raw = zlib.inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = new Uint8Array(width * height * 4);
  let prev = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)]!;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const cur = new Uint8Array(stride);
    for (let x = 0; x < stride; x++) {
      const a = x >= channels ? cur[x - channels]! : 0;
      const b = prev[x]!;
      const c = x >= channels ? prev[x - channels]! : 0;
      const v = line[x]!;
      if (filter === 0) cur[x] = v;
      else if (filter === 1) cur[x] = v + a;
      else if (filter === 2) cur[x] = v + b;
      else if (filter === 3) cur[x] = v + ((a + b) >> 1);
      else {
        const p = a + b - c;
        const pa = Math.abs(p - a);
        const pb = Math.abs(p - b);
        const pc = Math.abs(p - c);
        cur[x] = v + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
    }
    for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 4;
      if (channels === 1) out.set([cur[x]!, cur[x]!, cur[x]!, 255], o);
      else out.set([cur[x * channels]!, cur[x * channels + 1]!, cur[x * channels + 2]!, channels === 4 ? cur[x * channels + 3]! : 255], o);
    }
    prev = cur;
  }
  return { width, height, pixels: out };
}

/** Pixels whose colour differs by more than `threshold` (sum over R, G, B) between two screenshots. */
export function differingPixels(a: Buffer, b: Buffer, threshold = 24): number {
  const pa = decodePng(a);
  const pb = decodePng(b);
  if (pa.width !== pb.width || pa.height !== pb.height) return pa.width * pa.height;
  let n = 0;
  for (let i = 0; i < pa.pixels.length; i += 4) {
    if (Math.abs(pa.pixels[i]! - pb.pixels[i]!) + Math.abs(pa.pixels[i + 1]! - pb.pixels[i + 1]!) + Math.abs(pa.pixels[i + 2]! - pb.pixels[i + 2]!) > threshold) n++;
  }
  return n;
}

/** Pixels that differ from the most common colour (the background): how much of a canvas is drawn. */
export function drawnPixels(png: Buffer, threshold = 24): number {
  const { pixels } = decodePng(png);
  const counts = new Map<number, number>();
  for (let i = 0; i < pixels.length; i += 4) {
    const key = (pixels[i]! << 16) | (pixels[i + 1]! << 8) | pixels[i + 2]!;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  const bg = [...counts.entries()].sort((x, y) => y[1] - x[1])[0]![0];
  const [r, g, b] = [bg >> 16, (bg >> 8) & 255, bg & 255];
  let n = 0;
  for (let i = 0; i < pixels.length; i += 4) if (Math.abs(pixels[i]! - r) + Math.abs(pixels[i + 1]! - g) + Math.abs(pixels[i + 2]! - b) > threshold) n++;
  return n;
}
