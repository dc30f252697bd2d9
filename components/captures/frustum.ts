import * as THREE from "three";
import type { Camera } from "@/server/captures/captures.schemas";

/** How far in front of the camera its image plane is drawn (scene units, metres for a metric capture). */
const FRUSTUM_DEPTH = 0.25;

/**
 * The capture camera as a pyramid: its centre, the four corners of its image at FRUSTUM_DEPTH
 * (through its pinhole intrinsics, OpenCV's axes: x right, y down, z forward), and a tick
 * above the image's top edge so up can be told from down.
 */
export function frustumSegments(camera: Camera, depth = FRUSTUM_DEPTH): Float32Array {
  const q = new THREE.Quaternion(camera.rotation[0], camera.rotation[1], camera.rotation[2], camera.rotation[3]);
  const centre = new THREE.Vector3(...camera.position);
  const at = (u: number, v: number) => new THREE.Vector3(((u - camera.cx) / camera.fx) * depth, ((v - camera.cy) / camera.fy) * depth, depth).applyQuaternion(q).add(centre);
  const { width: w, height: h } = camera;
  const corners = [at(0, 0), at(w, 0), at(w, h), at(0, h)];
  const tick = at(w / 2, -h * 0.15);
  const points: THREE.Vector3[] = [];
  for (let i = 0; i < 4; i++) points.push(centre, corners[i]!, corners[i]!, corners[(i + 1) % 4]!);
  points.push(corners[0]!, tick, tick, corners[1]!);
  return new Float32Array(points.flatMap((p) => [p.x, p.y, p.z]));
}
