"""Write assets/pipeline_scene.ppm: a synthetic 256x192 street scene with six stick figures.

The detector + pose pipeline runner reads it (binary PPM, so numpy alone decodes it on the
device). Deterministic: run `python assets/make_pipeline_scene.py` to regenerate the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 256, 192
OUT = Path(__file__).with_name("pipeline_scene.ppm")


def _disc(img: np.ndarray, cx: int, cy: int, r: int, color: tuple[int, int, int]) -> None:
    yy, xx = np.ogrid[: img.shape[0], : img.shape[1]]
    img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = color


def _line(img: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int], w: int = 2) -> None:
    for t in np.linspace(0.0, 1.0, 4 * max(abs(x1 - x0), abs(y1 - y0), 1)):
        x, y = int(round(x0 + t * (x1 - x0))), int(round(y0 + t * (y1 - y0)))
        img[max(0, y - w // 2): y + w // 2 + 1, max(0, x - w // 2): x + w // 2 + 1] = color


def scene() -> np.ndarray:
    """Give the scene as an HxWx3 uint8 RGB array: sky, ground, and six people standing in two rows."""
    rng = np.random.default_rng(4)
    img = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    img[: HEIGHT // 2] = (150, 190, 230)
    img[HEIGHT // 2:] = (110, 105, 95)
    img = np.clip(img.astype(np.int16) + rng.integers(-6, 7, img.shape), 0, 255).astype(np.uint8)
    for row, (base, size) in enumerate(((100, 34), (170, 46))):
        for i in range(3):
            cx = 45 + i * 83 + row * 12
            r, g, b = (int(c) for c in rng.integers(30, 220, 3))
            color = (r, g, b)
            head = base - size
            _disc(img, cx, head, size // 8, (230, 190, 160))
            _line(img, cx, head + size // 8, cx, base - size // 3, color, 4)  # torso
            _line(img, cx, head + size // 4, cx - size // 4, base - size // 2, color)  # arms
            _line(img, cx, head + size // 4, cx + size // 4, base - size // 2, color)
            _line(img, cx, base - size // 3, cx - size // 6, base, (40, 40, 60))  # legs
            _line(img, cx, base - size // 3, cx + size // 6, base, (40, 40, 60))
    return img


def main() -> None:
    """Write the PPM file."""
    img = scene()
    OUT.write_bytes(f"P6\n{WIDTH} {HEIGHT}\n255\n".encode() + img.tobytes())
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
