"use client";

import { Canvas, extend, useFrame, useThree } from "@react-three/fiber";
import { SparkRenderer, SplatMesh } from "@sparkjsdev/spark";
import { useEffect, useMemo, useRef, useState } from "react";
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";
import URDFLoader, { type URDFRobot } from "urdf-loader";
import type { Camera } from "@/server/captures/captures.schemas";
import { frustumSegments } from "./frustum";

// The 3D view: a Gaussian-splat scene (Spark, through React Three Fiber) and the SO-101's
// digital twin (its URDF and meshes), posed by joint angles in the URDF's radians. A new
// snapshot is loaded beside the one shown and swapped in only once it is ready, so the scene
// never blinks while a trainer pushes. Spark needs a SparkRenderer in the scene and a renderer
// made without antialiasing.

const SparkRendererR3F = extend(SparkRenderer);

export const TWIN_URDF = "/so101/so101_new_calib.urdf";

export interface SceneStats {
  /** Splats in the snapshot on screen. */
  splats: number | null;
  /** 0..1 while a snapshot loads, null when none is loading. */
  loading: number | null;
  error: string | null;
  fps: number | null;
  isTwinReady: boolean;
}

export interface SceneCanvasProps {
  /** An SPZ (or PLY) URL; a new one is loaded and swapped in when ready. */
  snapshotUrl?: string | null;
  /** The twin's joints in radians, by URDF joint name; null hides the twin. */
  twinPose?: Record<string, number> | null;
  /** The capture camera, drawn as a frustum in the scene's axes; null draws none. */
  camera?: Camera | null;
  onStats?: (stats: SceneStats) => void;
  className?: string;
}

export default function SceneCanvas({ snapshotUrl = null, twinPose = null, camera = null, onStats, className }: SceneCanvasProps) {
  const [stats, setStats] = useState<SceneStats>({ splats: null, loading: null, error: null, fps: null, isTwinReady: false });
  const update = useMemo(() => (patch: Partial<SceneStats>) => setStats((s) => ({ ...s, ...patch })), []);
  useEffect(() => onStats?.(stats), [stats, onStats]);
  return (
    <div className={className ?? "relative h-96 w-full overflow-hidden rounded-md bg-zinc-900"} data-testid="scene" data-splats={stats.splats ?? ""} data-twin-ready={stats.isTwinReady ? "yes" : "no"} data-snapshot={snapshotUrl ?? ""}>
      <Canvas gl={{ antialias: false, preserveDrawingBuffer: true }} camera={{ position: [0.45, 0.35, 0.45], fov: 50, near: 0.01, far: 100 }}>
        <color attach="background" args={["#18181b"]} />
        <ambientLight intensity={0.8} />
        <directionalLight position={[1, 2, 1]} intensity={1.6} />
        <Controls />
        <FrameRate onFps={(fps) => update({ fps })} />
        <Splats url={snapshotUrl} onStats={update} />
        {twinPose && <Twin pose={twinPose} onReady={(isTwinReady) => update({ isTwinReady })} />}
        {camera && (
          <group rotation={[Math.PI, 0, 0]}>
            <Frustum camera={camera} />
          </group>
        )}
      </Canvas>
      <div className="pointer-events-none absolute left-2 top-2 space-y-0.5 rounded bg-black/50 px-2 py-1 font-mono text-[11px] text-zinc-100" data-field="overlay">
        <div>{stats.splats !== null ? `${stats.splats.toLocaleString()} splats` : snapshotUrl ? (stats.loading !== null ? "loading the snapshot…" : "no snapshot yet") : "no scene"}</div>
        <div>{stats.fps !== null ? `${stats.fps} fps` : ""}</div>
        {stats.loading !== null && <div data-field="loading">loading {Math.round(stats.loading * 100)}%</div>}
        {twinPose && !stats.isTwinReady && <div>loading the twin…</div>}
      </div>
      {stats.error && <div className="absolute bottom-2 left-2 right-2 rounded bg-red-900/80 px-2 py-1 text-xs text-red-50" role="alert">{stats.error}</div>}
    </div>
  );
}

function Controls() {
  const { camera, gl } = useThree();
  useEffect(() => {
    const controls = new OrbitControls(camera, gl.domElement);
    controls.target.set(0, 0.15, 0);
    controls.update();
    return () => controls.dispose();
  }, [camera, gl]);
  return null;
}

function FrameRate({ onFps }: { onFps: (fps: number) => void }) {
  const frames = useRef({ count: 0, since: 0 });
  useFrame(({ clock }) => {
    const f = frames.current;
    f.count++;
    const t = clock.getElapsedTime();
    if (t - f.since >= 1) {
      onFps(Math.round(f.count / (t - f.since)));
      f.count = 0;
      f.since = t;
    }
  });
  return null;
}

function Splats({ url, onStats }: { url: string | null; onStats: (patch: Partial<SceneStats>) => void }) {
  const gl = useThree((s) => s.gl);
  const group = useRef<THREE.Group>(null);
  const shown = useRef<SplatMesh | null>(null);
  const sparkArgs = useMemo(() => ({ renderer: gl }), [gl]);
  useEffect(() => {
    if (!url) return;
    let isCancelled = false;
    onStats({ loading: 0, error: null });
    const mesh = new SplatMesh({ url, onProgress: (e) => !isCancelled && onStats({ loading: e.total ? e.loaded / e.total : null }) });
    mesh.initialized
      .then(() => {
        if (isCancelled || !group.current) return mesh.dispose();
        // The new snapshot goes in, then the old one out: never a frame without a scene.
        group.current.add(mesh);
        const old = shown.current;
        shown.current = mesh;
        if (old) {
          group.current.remove(old);
          old.dispose();
        }
        onStats({ splats: mesh.packedSplats?.numSplats ?? null, loading: null });
      })
      .catch((error: unknown) => !isCancelled && onStats({ loading: null, error: `Could not load the snapshot: ${error instanceof Error ? error.message : String(error)}` }));
    return () => {
      isCancelled = true;
    };
  }, [url, onStats]);
  useEffect(() => () => shown.current?.dispose(), []);
  return (
    <SparkRendererR3F args={[sparkArgs]}>
      {/* 3DGS trainers write y down, z forward (OpenCV's camera axes); three is y up. */}
      <group ref={group} rotation={[Math.PI, 0, 0]} />
    </SparkRendererR3F>
  );
}

/** The twin, loaded once per mount; `onReady(true)` once its meshes are in, `onReady(false)` when it goes. */
function Twin({ pose, onReady }: { pose: Record<string, number>; onReady: (isReady: boolean) => void }) {
  const [robot, setRobot] = useState<URDFRobot | null>(null);
  // Loaded once: a parent re-rendering (the frame-rate read-out does, every second) must not reload it.
  const ready = useRef(onReady);
  ready.current = onReady;
  useEffect(() => {
    let isCancelled = false;
    const manager = new THREE.LoadingManager();
    const loader = new URDFLoader(manager);
    let loaded: URDFRobot | null = null;
    manager.onLoad = () => !isCancelled && ready.current(true);
    loader.load(TWIN_URDF, (r) => {
      // URDF is z up; three is y up.
      r.rotation.x = -Math.PI / 2;
      loaded = r;
      if (!isCancelled) setRobot(r);
    });
    return () => {
      isCancelled = true;
      ready.current(false);
      loaded?.traverse((o) => {
        const mesh = o as THREE.Mesh;
        mesh.geometry?.dispose();
      });
    };
  }, []);
  useEffect(() => {
    if (!robot) return;
    for (const [joint, radians] of Object.entries(pose)) if (robot.joints[joint]) robot.setJointValue(joint, radians);
  }, [robot, pose]);
  return robot ? <primitive object={robot} /> : null;
}

function Frustum({ camera }: { camera: Camera }) {
  // The session is read every second: a new object with the same camera keeps its geometry.
  const key = JSON.stringify(camera);
  const geometry = useMemo(() => {
    const g = new THREE.BufferGeometry();
    g.setAttribute("position", new THREE.BufferAttribute(frustumSegments(JSON.parse(key) as Camera), 3));
    return g;
  }, [key]);
  useEffect(() => () => geometry.dispose(), [geometry]);
  return (
    <lineSegments geometry={geometry}>
      <lineBasicMaterial color="#facc15" />
    </lineSegments>
  );
}
