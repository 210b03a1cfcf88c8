"""Synthetic chest radiographs that show their findings.

A drawing, not a simulation: a frontal view has two dark lung fields either side of a bright
mediastinum and heart, ribs, a spine and diaphragm domes; a lateral view is a single lung field
with the heart in front. Each synthetic finding changes the picture where a reader would look:

- cardiomegaly: a wider heart shadow;
- pleural effusion: a bright, meniscus-shaped base on that side (blunted angle);
- pneumothorax: a very dark rim without lung markings along that side's outer edge;
- atelectasis: a bright horizontal band in that lung base;
- opacity: a bright blurred patch in that lower lung;
- nodule: a small bright disc in that upper lung;
- fracture: a visible step in one rib on that side;
- support devices: a bright catheter line and a pacemaker box.

"left"/"right" are the patient's, so "left" is drawn on the image's right, as on a PA film.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def _grid(h: int, w: int):
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return y / h, x / w


def _ellipse(y, x, cy, cx, ry, rx):
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def _blur(a: np.ndarray, k: int) -> np.ndarray:
    """Separable box blur (k pixels), numpy only."""
    if k <= 1:
        return a
    kernel = np.ones(k, dtype=np.float32) / k
    pad = k // 2
    b = np.pad(a, ((pad, pad), (0, 0)), mode="edge")
    b = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="valid"), 0, b)[: a.shape[0]]
    b = np.pad(b, ((0, 0), (pad, pad)), mode="edge")
    b = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), 1, b)[:, : a.shape[1]]
    return b


def draw_frontal(present: dict[str, str], rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A PA view of a study with the given findings {finding: side}."""
    h, w = size
    y, x = _grid(h, w)
    img = np.full((h, w), 0.08, dtype=np.float32)
    img[_ellipse(y, x, 0.55, 0.5, 0.5, 0.46)] = 0.55  # soft tissue of the thorax
    # Image column of each lung's centre: patient's right lung on the image's left.
    cx = {"right": 0.3, "left": 0.7}
    lung = {}
    for side, c in cx.items():
        m = _ellipse(y, x, 0.5, c, 0.32, 0.16)
        lung[side] = m
        img[m] = 0.22
    # Lung markings: faint vessels.
    img += 0.04 * np.sin(40 * x + 7 * y) * (lung["left"] | lung["right"])
    # Ribs: bright arcs over both lungs.
    for i in range(7):
        ry = 0.24 + i * 0.075
        band = np.abs(y - ry - 0.05 * np.cos((x - 0.5) * 3)) < 0.008
        img[band & (lung["left"] | lung["right"])] += 0.12
    img[(np.abs(x - 0.5) < 0.035) & (y > 0.1)] = 0.7  # spine
    heart_rx = 0.19 if "cardiomegaly" in present else 0.12
    img[_ellipse(y, x, 0.66, 0.53, 0.13, heart_rx)] = 0.72
    for c in cx.values():  # diaphragm domes
        img[_ellipse(y, x, 0.92, c, 0.1, 0.18) & (y > 0.82)] = 0.75

    for name, side in present.items():
        c = cx[side]
        outer = c - 0.13 if side == "right" else c + 0.13
        if name == "pleural_effusion":
            level = 0.7 - 0.3 * (x - c) * (1 if side == "left" else -1)
            img[lung[side] & (y > level)] = 0.8
        elif name == "pneumothorax":
            rim = lung[side] & (np.abs(x - outer) < 0.05) & (y < 0.72)
            img[rim] = 0.0
        elif name == "atelectasis":
            img[lung[side] & (np.abs(y - 0.7) < 0.018)] = 0.75
        elif name == "opacity":
            patch = np.exp(-(((y - 0.62) / 0.07) ** 2 + ((x - c) / 0.07) ** 2))
            img += 0.5 * patch * lung[side]
        elif name == "nodule":
            img[_ellipse(y, x, 0.35, c + (0.03 if side == "left" else -0.03), 0.025, 0.025)] = 0.9
        elif name == "fracture":
            rib = np.abs(y - 0.39 - 0.05 * np.cos((x - 0.5) * 3)) < 0.012
            near = np.abs(x - outer) < 0.05
            img[rib & near] = 0.22
            img[(np.abs(y - 0.42 - 0.05 * np.cos((x - 0.5) * 3)) < 0.012) & near] = 0.85
        elif name == "support_devices":
            img[(np.abs(x - 0.42) < 0.006) & (y > 0.12) & (y < 0.6)] = 1.0
            img[(np.abs(y - 0.18) < 0.025) & (np.abs(x - 0.78) < 0.05)] = 1.0
    return _finish(img, rng)


def draw_lateral(present: dict[str, str], rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A lateral view: one lung field, the heart anterior (image left), the spine posterior."""
    h, w = size
    y, x = _grid(h, w)
    img = np.full((h, w), 0.08, dtype=np.float32)
    img[_ellipse(y, x, 0.55, 0.5, 0.5, 0.4)] = 0.5
    lung = _ellipse(y, x, 0.5, 0.52, 0.34, 0.27)
    img[lung] = 0.25
    img[(x > 0.78) & (x < 0.86) & (y > 0.1)] = 0.7  # spine, posterior
    heart_rx = 0.2 if "cardiomegaly" in present else 0.13
    img[_ellipse(y, x, 0.66, 0.36, 0.15, heart_rx)] = 0.7
    img[_ellipse(y, x, 0.95, 0.52, 0.1, 0.3) & (y > 0.83)] = 0.75
    if "pleural_effusion" in present:
        img[lung & (y > 0.74) & (x > 0.6)] = 0.8  # posterior costophrenic angle
    if "opacity" in present:
        img += 0.4 * np.exp(-(((y - 0.6) / 0.08) ** 2 + ((x - 0.55) / 0.08) ** 2)) * lung
    if "support_devices" in present:
        img[(np.abs(x - 0.45) < 0.006) & (y > 0.12) & (y < 0.6)] = 1.0
    return _finish(img, rng)


def _finish(img: np.ndarray, rng: np.random.Generator) -> Image.Image:
    img = _blur(img, 3)
    img = img * rng.uniform(0.85, 1.1) + rng.uniform(-0.04, 0.04)  # exposure
    img = img + rng.normal(0.0, 0.03, img.shape).astype(np.float32)  # quantum noise
    return Image.fromarray((np.clip(img, 0.0, 1.0) * 255).astype(np.uint8))
