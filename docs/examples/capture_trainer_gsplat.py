#!/usr/bin/env python3
"""A live Gaussian-splat trainer for a Gantry capture session, with gsplat on a CUDA GPU.

It speaks the trainer protocol of docs/capture.md: claims the session, long-polls its frames,
trains on them as they arrive, pushes a PLY snapshot every --push-every steps and sends a
heartbeat in between, so the portal's viewer shows the scene growing. When the session stops
it trains --final-steps more, pushes the last snapshot and releases the session. A reset
(the generation changes) starts it over from scratch.

    pip install gsplat torch numpy pillow requests
    export GANTRY_TOKEN=gty_...     # Settings → API tokens, with the write scope
    python3 capture_trainer_gsplat.py http://portal:3000 <session id> \\
        --kinematics my_arm:camera_pose --intrinsics 600,600,320,240

Camera poses come from the arm: each frame arrives with the joint state nearest it, and
--kinematics names a function `camera_pose(angles) -> 4x4 camera-to-world matrix` (numpy,
metres, OpenCV camera axes: x right, y down, z forward) for your arm and camera mount, e.g.
the SO-101's forward kinematics times the wrist camera's offset. --intrinsics are fx, fy,
cx, cy in pixels at the frames' full resolution.
"""
import argparse
import importlib
import io
import math
import os
import random
import socket
import sys
import time
from urllib.parse import urljoin

import numpy as np
import requests
import torch
import torch.nn.functional as F
from PIL import Image

from gsplat import DefaultStrategy, export_splats, rasterization

SH_C0 = 0.28209479177387814


class LeaseLost(Exception):
    """Another trainer holds the session now (this one was silent too long), or it was deleted."""


class PortalError(Exception):
    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status


class Portal:
    def __init__(self, base_url, session_id, token, timeout=60):
        self.base = base_url.rstrip("/") + "/"
        self.session_id = session_id
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.timeout = timeout

    def call(self, method, path, timeout=None, **kwargs):
        response = self.http.request(method, urljoin(self.base, path.lstrip("/")), timeout=timeout or self.timeout, **kwargs)
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text
            # 404: the session was deleted (or the token is of another organisation).
            if response.status_code == 404:
                raise LeaseLost(message)
            raise PortalError(response.status_code, message)
        return response

    def session_path(self, rest):
        return f"/api/captures/{self.session_id}/{rest}"

    def claim(self, name):
        """A lease on the session; waits while another trainer's lease is live (409)."""
        while True:
            try:
                return self.call("POST", self.session_path("claim"), json={"trainer": name}).json()
            except PortalError as error:
                if error.status != 409:
                    raise
                print(error, file=sys.stderr)
                time.sleep(5)

    def frames(self, after, wait):
        return self.call("GET", self.session_path(f"frames?after={after}&wait={wait}&limit=100"), timeout=wait + 30).json()

    def frame_bytes(self, frame):
        return self.call("GET", frame["url"]).content

    def heartbeat(self, claim_id, iteration, gaussians, progress):
        """409: the lease lapsed and another trainer claimed the session."""
        try:
            return self.call("POST", self.session_path("heartbeat"), json={"claimId": claim_id, "iteration": iteration, "gaussians": gaussians, "progress": progress}).json()
        except PortalError as error:
            if error.status == 409:
                raise LeaseLost(str(error)) from error
            raise

    def push(self, claim_id, iteration, generation, ply):
        """The stored snapshot, or None when it was refused as stale (the session was reset, or
        the lease lost: the next frames poll or heartbeat says which)."""
        query = f"claimId={claim_id}&iteration={iteration}&generation={generation}"
        try:
            return self.call("POST", self.session_path(f"snapshots?{query}"), data=ply, headers={"Content-Type": "application/octet-stream"}).json()
        except PortalError as error:
            if error.status != 409:
                raise
            print(f"Snapshot at step {iteration} refused: {error}", file=sys.stderr)
            return None

    def release(self, claim_id):
        try:
            self.call("POST", self.session_path("release"), json={"claimId": claim_id})
        except (LeaseLost, PortalError, requests.RequestException):
            pass


def load_kinematics(spec):
    module_name, _, function_name = spec.partition(":")
    sys.path.insert(0, os.getcwd())
    return getattr(importlib.import_module(module_name), function_name or "camera_pose")


def ssim(a, b, window=11, sigma=1.5):
    """SSIM of two [1, 3, H, W] images in 0..1, with a Gaussian window (as 3DGS trains with)."""
    coords = torch.arange(window, device=a.device, dtype=a.dtype) - window // 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = (g / g.sum())[None, :]
    kernel = (g.T @ g)[None, None].expand(3, 1, window, window)
    blur = lambda x: F.conv2d(x, kernel, padding=window // 2, groups=3)
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b, cov = blur(a * a) - mu_a ** 2, blur(b * b) - mu_b ** 2, blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return (((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))).mean()


class Scene:
    """The Gaussians, their optimisers and gsplat's densification strategy."""

    def __init__(self, args, device):
        n, extent = args.init_points, args.extent
        means = (torch.rand(n, 3) * 2 - 1) * extent
        scales = torch.full((n, 3), math.log(extent / n ** (1 / 3)))
        quats = torch.rand(n, 4)
        opacities = torch.logit(torch.full((n,), 0.1))
        colors = torch.zeros(n, (args.sh_degree + 1) ** 2, 3)
        colors[:, 0, :] = (torch.rand(n, 3) - 0.5) / SH_C0
        rates = {"means": 1.6e-4 * extent, "scales": 5e-3, "quats": 1e-3, "opacities": 5e-2, "sh0": 2.5e-3, "shN": 2.5e-3 / 20}
        values = {"means": means, "scales": scales, "quats": quats, "opacities": opacities, "sh0": colors[:, :1], "shN": colors[:, 1:]}
        self.splats = torch.nn.ParameterDict({k: torch.nn.Parameter(v) for k, v in values.items()}).to(device)
        self.optimizers = {k: torch.optim.Adam([{"params": self.splats[k], "lr": lr, "name": k}], eps=1e-15) for k, lr in rates.items()}
        self.strategy = DefaultStrategy()
        self.strategy.check_sanity(self.splats, self.optimizers)
        self.state = self.strategy.initialize_state(scene_scale=extent)
        self.sh_degree = args.sh_degree
        self.step = 0

    @property
    def count(self):
        return int(self.splats["means"].shape[0])

    def train_step(self, image, camtoworld, K):
        """One gsplat step on one frame: image [H, W, 3] in 0..1, camtoworld and K on the device."""
        height, width = image.shape[:2]
        colors = torch.cat([self.splats["sh0"], self.splats["shN"]], 1)
        render, _, info = rasterization(
            means=self.splats["means"], quats=self.splats["quats"], scales=torch.exp(self.splats["scales"]),
            opacities=torch.sigmoid(self.splats["opacities"]), colors=colors,
            viewmats=torch.linalg.inv(camtoworld)[None], Ks=K[None], width=width, height=height,
            sh_degree=min(self.step // 1000, self.sh_degree), packed=False,
        )
        self.strategy.step_pre_backward(self.splats, self.optimizers, self.state, self.step, info)
        rendered = render[0].clamp(0, 1)
        loss = 0.8 * F.l1_loss(rendered, image) + 0.2 * (1 - ssim(rendered.permute(2, 0, 1)[None], image.permute(2, 0, 1)[None]))
        loss.backward()
        for optimizer in self.optimizers.values():
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        self.strategy.step_post_backward(self.splats, self.optimizers, self.state, self.step, info, packed=False)
        self.step += 1
        return float(loss)

    def export_ply(self):
        with torch.no_grad():
            s = self.splats
            return export_splats(means=s["means"], scales=s["scales"], quats=s["quats"], opacities=s["opacities"], sh0=s["sh0"], shN=s["shN"], format="ply")


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("portal")
    parser.add_argument("session")
    parser.add_argument("--kinematics", required=True, help="module:function mapping six joint angles (radians) to a 4x4 camera-to-world matrix")
    parser.add_argument("--intrinsics", required=True, help="fx,fy,cx,cy in pixels at the frames' full resolution")
    parser.add_argument("--name", default=f"gsplat@{socket.gethostname()}")
    parser.add_argument("--downscale", type=int, default=1, help="train on frames shrunk by this factor")
    parser.add_argument("--max-frames", type=int, default=400, help="frames kept in memory; past this, a random older one makes room")
    parser.add_argument("--push-every", type=int, default=500, help="steps between snapshots")
    parser.add_argument("--final-steps", type=int, default=2000, help="steps after the session stops, before the last snapshot")
    parser.add_argument("--max-steps", type=int, default=30_000, help="steps counted as 100%% progress")
    parser.add_argument("--sh-degree", type=int, default=3, choices=[0, 1, 2, 3])
    parser.add_argument("--init-points", type=int, default=50_000)
    parser.add_argument("--extent", type=float, default=1.0, help="half-width in metres of the box the first Gaussians are scattered in")
    args = parser.parse_args(argv)

    if not torch.cuda.is_available():
        sys.exit("gsplat trains on a CUDA GPU; none is visible to torch here")
    device = "cuda"
    token = os.environ.get("GANTRY_TOKEN") or sys.exit("Set GANTRY_TOKEN to an API token with the write scope")
    camera_pose = load_kinematics(args.kinematics)
    fx, fy, cx, cy = (float(v) / args.downscale for v in args.intrinsics.split(","))
    K = torch.tensor([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], dtype=torch.float32, device=device)

    portal = Portal(args.portal, args.session, token)
    lease = portal.claim(args.name)
    claim_id, generation = lease["claimId"], lease["generation"]
    heartbeat_every = lease["silentAfterMs"] / 1000 / 3
    print(f"Claimed session {args.session} as {args.name}")

    scene, frames, cursor, last_beat, stopped_at = Scene(args, device), [], 0, 0.0, None
    try:
        while True:
            # Wait for frames only while there is nothing to train on; otherwise just look.
            wait = 0 if frames else min(10, heartbeat_every)
            page = portal.frames(cursor, wait)
            if page["generation"] != generation:
                print(f"The session was reset (generation {page['generation']}): starting over")
                generation, scene, frames, stopped_at = page["generation"], Scene(args, device), [], None
            for frame in page["frames"]:
                if not frame["joints"]:
                    print(f"Frame {frame['seq']} has no joint state to place the camera; skipped", file=sys.stderr)
                    continue
                image = Image.open(io.BytesIO(portal.frame_bytes(frame))).convert("RGB")
                if args.downscale > 1:
                    image = image.resize((image.width // args.downscale, image.height // args.downscale), Image.Resampling.BILINEAR)
                pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0).to(device)
                pose = torch.tensor(np.asarray(camera_pose(frame["joints"]["angles"]), dtype=np.float32), device=device)
                if len(frames) >= args.max_frames:
                    frames.pop(random.randrange(len(frames)))
                frames.append((pixels, pose))
            cursor = page["cursor"]

            if page["status"] == "stopped" and not page["frames"] and stopped_at is None:
                stopped_at = scene.step
                print(f"The session stopped; {args.final_steps} more steps, then the last snapshot")
            for _ in range(100 if frames else 0):
                pixels, pose = random.choice(frames)
                scene.train_step(pixels, pose, K)
                if scene.step % args.push_every == 0 and portal.push(claim_id, scene.step, generation, scene.export_ply()):
                    print(f"Step {scene.step}: pushed {scene.count} Gaussians")
            if time.monotonic() - last_beat >= heartbeat_every:
                portal.heartbeat(claim_id, scene.step, scene.count, min(1.0, scene.step / args.max_steps))
                last_beat = time.monotonic()
            if stopped_at is not None and (scene.step - stopped_at >= args.final_steps or not frames):
                if frames:
                    portal.push(claim_id, scene.step, generation, scene.export_ply())
                print(f"Done at step {scene.step} with {scene.count} Gaussians")
                return
    except LeaseLost as error:
        sys.exit(f"Lost the session: {error}")
    finally:
        portal.release(claim_id)


if __name__ == "__main__":
    main(sys.argv[1:])
