import { SH_REST_PER_CHANNEL, type SplatCloud } from "./ply";

/** A seeded random splat cloud within the ranges SPZ can hold (tests and the benchmark). */
export function randomCloud(count: number, shDegree: number, seed = 1): SplatCloud {
  let s = seed >>> 0 || 1;
  const rand = () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 0x100000000;
  };
  const restN = SH_REST_PER_CHANNEL[shDegree];
  const cloud: SplatCloud = {
    count, shDegree,
    positions: new Float32Array(count * 3), scales: new Float32Array(count * 3), rotations: new Float32Array(count * 4),
    alphas: new Float32Array(count), colors: new Float32Array(count * 3), sh: new Float32Array(count * restN * 3),
  };
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  // Distributions shaped like a trained scene's, so compressed sizes resemble a real capture.
  for (let i = 0; i < count * 3; i++) {
    cloud.positions[i] = (rand() - 0.5) * 4; // a robot workspace: a few metres across
    cloud.scales[i] = Math.max(-9.5, Math.min(5, -5 + gauss() * 0.8));
    cloud.colors[i] = Math.max(-3.3, Math.min(3.3, gauss() * 0.6));
  }
  for (let i = 0; i < count * 4; i++) cloud.rotations[i] = rand() * 2 - 1;
  for (let i = 0; i < count; i++) cloud.alphas[i] = rand() < 0.5 ? 6 + rand() : gauss() * 2;
  // Most SH rest energy sits near zero, with a few wide values.
  for (let i = 0; i < cloud.sh.length; i++) {
    cloud.sh[i] = rand() < 0.02 ? (rand() - 0.5) * 1.6 : gauss() * 0.06;
  }
  return cloud;
}
