"""kpmobile's detector + pose pipeline runner for x86_64 devices (the virtual phone) and the host.

It does what PaddleDetection's Lite demo (``deploy/lite/src/main.cc`` with a keypoint model) does
for one image, and prints that demo's output, so kpmobile's ``det_keypoint_demo`` parser reads
both. Stdlib, numpy and paddlelite only (no cv2): the orchestrator pushes one self-contained file
built from this one, with the stdlib-only ``runner_common`` spliced in and a ``#!<python>`` line
prepended (``kpmobile.runners.splice``), like lite_runner.

One iteration, each stage timed with perf_counter:
- detection preprocess: bilinear resize to the detector's input, normalise (ImageNet mean/std), CHW;
- detection inference; detection postprocess: PicoDet head decode (per-level grid, DFL expectation
  over the distance bins, stride scaling) and greedy NMS (IoU 0.5);
- crop: PaddleDetection's CropImg (3:4 aspect, 15 % expansion) of each person;
- keypoint preprocess (resize to the pose input, normalise, CHW), keypoint inference in batches of
  ``--keypoint_batch_size``, keypoint postprocess (heatmap argmax mapped back to the image).

Persons: the catalogue's detectors have random weights, so their boxes mean nothing and rarely
pass a score threshold. The runner therefore takes the top ``--persons`` boxes by score whatever
their score (the detection postprocess is real work either way), and where fewer than that many
usable boxes (at least 8x8 px inside the image) remain, fills up with fixed crops on a grid over
the image. The number of persons is always exactly ``--persons``; stderr says how many were fixed.

Differences from the demo, visible in the output or stderr:
- "Total Pipeline time(ms) per image" is the measured wall time of a whole iteration (the demo
  prints det + keypoint + crop); the gap between the two is this script's glue.
- Times are averages over ``--repeats`` iterations after ``--warmup`` (the demo's run_benchmark
  uses 10 and 10); no visualised image is written; the x86 MobileConfig has no set_threads or
  set_power_mode, which stderr says.
- Images are binary PPM (P6) or .npy (HxWx3 uint8, RGB).
- The result file (not stdout) ends with a ``per-iteration(ms):`` line of every timed iteration's
  total, which kpmobile's parser reads as the run's samples.
- ``KPMOBILE_SLOWDOWN_PCT`` (the virtual phone's test-only ``--slowdown``) stretches each stage of each iteration
  to (1 + PCT/100) times its run time, as in lite_runner.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any

from kpmobile.runners.runner_common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    RunnerFailure,
    exit_now,
    format_samples,
    import_numpy,
    paced,
    parse_gflags,
    run_main,
)

RUNNER_VERSION = "0.1"
RUNNER_NAME = "kpmobile-pipeline-runner"
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
MIN_BOX_PX = 8


@dataclass
class Flags:
    """The runner's flags (gflags style: --name=value)."""

    det_model: str = ""
    keypoint_model: str = ""
    image: str = ""
    det_shape: str = "1,3,192,192"
    keypoint_shape: str = "1,3,128,96"
    persons: int = 1
    keypoint_batch_size: int = 1
    threads: int = 1
    power_mode: int = 0
    warmup: int = 1
    repeats: int = 10
    threshold: float = 0.5
    result_path: str = ""


_TYPES: dict[str, type] = {
    "det_model": str, "keypoint_model": str, "image": str, "det_shape": str, "keypoint_shape": str,
    "persons": int, "keypoint_batch_size": int, "threads": int, "power_mode": int, "warmup": int,
    "repeats": int, "threshold": float, "result_path": str,
}


Failure = RunnerFailure  # a failure printed as one line on stderr with an exit code (EXIT_USAGE unless told)


def parse_flags(argv: list[str]) -> Flags:
    """Give the Flags of a command line; Failure(EXIT_USAGE) when one is unknown or malformed."""
    flags = Flags()
    for name, value in parse_gflags(argv, _TYPES).items():
        setattr(flags, name, value)
    for name in ("det_model", "keypoint_model", "image"):
        if not getattr(flags, name):
            raise Failure(f"--{name} is required")
    if flags.persons < 1 or flags.repeats < 1 or flags.warmup < 0 or flags.keypoint_batch_size < 1:
        raise Failure("--persons, --repeats and --keypoint_batch_size must be 1 or more, --warmup 0 or more")
    return flags


def _shape(text: str) -> tuple[int, int]:
    """Give (height, width) of an NCHW shape written N,C,H,W."""
    dims = [int(d) for d in text.split(",")]
    if len(dims) != 4:
        raise Failure(f"shape {text!r} is not N,C,H,W")
    return dims[2], dims[3]


# images --------------------------------------------------------------------------------------
def read_image(path: str) -> Any:
    """Give an HxWx3 uint8 RGB array from a binary PPM (P6) or .npy file."""
    import numpy as np

    try:
        if path.endswith(".npy"):
            img = np.load(path)
        else:
            with open(path, "rb") as fh:
                data = fh.read()
            tokens: list[bytes] = []
            pos = 0
            while len(tokens) < 4:
                while data[pos:pos + 1].isspace():
                    pos += 1
                if data[pos:pos + 1] == b"#":
                    pos = data.index(b"\n", pos) + 1
                    continue
                start = pos
                while not data[pos:pos + 1].isspace():
                    pos += 1
                tokens.append(data[start:pos])
            if tokens[0] != b"P6" or int(tokens[3]) != 255:
                raise Failure(f"{path} is not an 8-bit binary PPM (P6)", EXIT_USAGE)
            width, height = int(tokens[1]), int(tokens[2])
            img = np.frombuffer(data, dtype=np.uint8, count=width * height * 3, offset=pos + 1)
            img = img.reshape(height, width, 3)
    except OSError as exc:
        raise Failure(f"cannot read image {path}: {exc.strerror}") from None
    except (ValueError, IndexError) as exc:
        raise Failure(f"image {path} is malformed ({exc})") from None
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise Failure(f"image {path} is not HxWx3 uint8")
    return img


def resize_bilinear(img: Any, height: int, width: int) -> Any:
    """Give `img` (HxWxC) resized to height x width with bilinear interpolation (half-pixel centres)."""
    import numpy as np

    src_h, src_w = img.shape[:2]
    ys = np.clip((np.arange(height) + 0.5) * src_h / height - 0.5, 0, src_h - 1)
    xs = np.clip((np.arange(width) + 0.5) * src_w / width - 0.5, 0, src_w - 1)
    y0 = np.floor(ys).astype(np.int64)
    x0 = np.floor(xs).astype(np.int64)
    y1 = np.minimum(y0 + 1, src_h - 1)
    x1 = np.minimum(x0 + 1, src_w - 1)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    f = img.astype(np.float32)
    top = f[y0][:, x0] * (1 - wx) + f[y0][:, x1] * wx
    bottom = f[y1][:, x0] * (1 - wx) + f[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def to_tensor(img: Any) -> Any:
    """Give a 1xCxHxW float32 tensor of an HxWx3 image, scaled to [0, 1] and normalised."""
    import numpy as np

    x = (img.astype(np.float32) / 255.0 - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


# detection postprocess -------------------------------------------------------------------------
def decode_picodet(outputs: list[Any], in_h: int, in_w: int, scale_y: float, scale_x: float) -> Any:
    """Give Kx5 boxes (x1, y1, x2, y2, score) in image pixels from PicoDet's per-level outputs."""
    import numpy as np

    scores = [o.reshape(-1, o.shape[-1]) for o in outputs if o.shape[-1] <= 4 and o.ndim >= 2]
    regs = [o.reshape(-1, o.shape[-1]) for o in outputs if o.shape[-1] > 4 and o.shape[-1] % 4 == 0]
    boxes = []
    for cls, reg in zip(scores, regs):
        cells = cls.shape[0]
        stride = int(round((in_h * in_w / cells) ** 0.5)) or 1
        cols = max(1, in_w // stride)
        idx = np.arange(cells)
        cx = (idx % cols + 0.5) * stride
        cy = (idx // cols + 0.5) * stride
        bins = reg.shape[1] // 4
        logits = reg.reshape(cells, 4, bins).astype(np.float64)
        logits -= logits.max(axis=2, keepdims=True)
        prob = np.exp(logits)
        prob /= prob.sum(axis=2, keepdims=True)
        dist = (prob * np.arange(bins)).sum(axis=2) * stride
        score = cls.max(axis=1).astype(np.float64)
        level = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3], score], axis=1)
        boxes.append(level)
    if not boxes:
        raise Failure("the detector's outputs are not PicoDet's (scores [.., C<=4] and boxes [.., 4*bins])",
                      EXIT_FAILED)
    out = np.concatenate(boxes)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]] * scale_x, 0, in_w * scale_x - 1)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]] * scale_y, 0, in_h * scale_y - 1)
    return out


def nms(boxes: Any, iou: float = 0.5, top_k: int = 1000, keep_k: int = 100) -> Any:
    """Give the boxes greedy NMS keeps, best score first."""
    import numpy as np

    order = np.argsort(-boxes[:, 4])[:top_k]
    b = boxes[order]
    areas = np.maximum(b[:, 2] - b[:, 0], 0) * np.maximum(b[:, 3] - b[:, 1], 0)
    keep: list[int] = []
    alive = np.ones(len(b), dtype=bool)
    for i in range(len(b)):
        if not alive[i]:
            continue
        keep.append(i)
        if len(keep) >= keep_k:
            break
        xx1 = np.maximum(b[i, 0], b[i + 1:, 0])
        yy1 = np.maximum(b[i, 1], b[i + 1:, 1])
        xx2 = np.minimum(b[i, 2], b[i + 1:, 2])
        yy2 = np.minimum(b[i, 3], b[i + 1:, 3])
        inter = np.maximum(xx2 - xx1, 0) * np.maximum(yy2 - yy1, 0)
        union = areas[i] + areas[i + 1:] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        alive[i + 1:] &= overlap <= iou
    return b[keep]


Box = tuple[int, int, int, int, float]  # x1, y1, x2, y2, score


def choose_persons(boxes: Any, persons: int, height: int, width: int) -> tuple[list[Box], int]:
    """Give `persons` boxes (x1, y1, x2, y2, score): the best usable ones, then fixed grid crops; and
    how many are fixed."""
    chosen: list[Box] = []
    for x1, y1, x2, y2, score in boxes:
        if len(chosen) == persons:
            break
        if x2 - x1 >= MIN_BOX_PX and y2 - y1 >= MIN_BOX_PX:
            chosen.append((int(x1), int(y1), int(x2), int(y2), float(score)))
    fixed = persons - len(chosen)
    cols = max(1, min(fixed, 3))
    rows = max(1, -(-fixed // cols))
    for i in range(fixed):
        r, c = divmod(i, cols)
        cw, ch = width // cols, height // rows
        chosen.append((c * cw + cw // 4, r * ch + ch // 8, c * cw + 3 * cw // 4, r * ch + 7 * ch // 8, 0.0))
    return chosen, fixed


def crop_person(img: Any, box: tuple[int, int, int, int, float], expand: float = 0.15) -> tuple[Any, tuple[int, int]]:
    """Give the person's crop (PaddleDetection CropImg: 3:4 aspect, expanded) and its top-left corner."""
    height, width = img.shape[:2]
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
    half_h, half_w = (y2 - y1) // 2, (x2 - x1) // 2
    if half_h * 3 > half_w * 4:
        half_w = int(half_h * 0.75)
    else:
        half_h = int(half_w * 4 / 3)
    ax1 = max(0, cx - int(half_w * (1 + expand)))
    ay1 = max(0, cy - int(half_h * (1 + expand)))
    ax2 = min(width - 1, cx + int(half_w * (1 + expand)))
    ay2 = min(height - 1, cy + int(half_h * (1 + expand)))
    return img[ay1:ay2 + 1, ax1:ax2 + 1].copy(), (ax1, ay1)


def keypoints_from_heatmaps(heatmaps: Any, crops: list[tuple[Any, tuple[int, int]]]) -> Any:
    """Give Bx17x3 (x, y, score) keypoints in image pixels from BxKxHxW heatmaps."""
    import numpy as np

    batch, joints, hm_h, hm_w = heatmaps.shape
    flat = heatmaps.reshape(batch, joints, -1)
    idx = flat.argmax(axis=2)
    score = flat.max(axis=2)
    out = np.zeros((batch, joints, 3), dtype=np.float32)
    for b, (crop, (ox, oy)) in enumerate(crops[:batch]):
        ch, cw = crop.shape[:2]
        out[b, :, 0] = (idx[b] % hm_w + 0.5) * cw / hm_w + ox
        out[b, :, 1] = (idx[b] // hm_w + 0.5) * ch / hm_h + oy
        out[b, :, 2] = score[b]
    return out


# the pipeline ----------------------------------------------------------------------------------
@dataclass
class Times:
    """Summed stage times (ms) over the timed iterations."""

    det_pre: float = 0.0
    det_inf: float = 0.0
    det_post: float = 0.0
    crop: float = 0.0
    kpt_pre: float = 0.0
    kpt_inf: float = 0.0
    kpt_post: float = 0.0
    total: float = 0.0


def _predictor(path: str) -> Any:
    from paddlelite import lite

    if not os.path.isfile(path):
        raise Failure(f"model {path} does not exist", EXIT_FAILED)
    config = lite.MobileConfig()
    config.set_model_from_file(path)
    return lite.create_paddle_predictor(config)


def run_pipeline(flags: Flags) -> tuple[Times, list[tuple[int, int, int, int, float]], int, list[float]]:
    """Give the summed stage times of `repeats` iterations (after `warmup`), the persons, how many are fixed
    and each timed iteration's total (ms)."""
    np = import_numpy()
    det_h, det_w = _shape(flags.det_shape)
    kpt_h, kpt_w = _shape(flags.keypoint_shape)
    img = read_image(flags.image)
    det = _predictor(flags.det_model)
    kpt = _predictor(flags.keypoint_model)
    times = Times()
    persons: list[tuple[int, int, int, int, float]] = []
    fixed = 0
    totals: list[float] = []
    def clock(since: float | None = None) -> float:
        """Give the time, once the test-only slowdown has stretched the stage begun at `since`."""
        if since is not None:
            paced(since)
        return time.perf_counter()

    for it in range(flags.warmup + flags.repeats):
        t = Times()
        start = clock()
        x = to_tensor(resize_bilinear(img, det_h, det_w))
        t1 = clock(start)
        det.get_input(0).from_numpy(x)
        det.run()
        t2 = clock(t1)
        outputs = [np.asarray(det.get_output(i).numpy()) for i in range(len(det.get_output_names()))]
        boxes = nms(decode_picodet(outputs, det_h, det_w, img.shape[0] / det_h, img.shape[1] / det_w))
        persons, fixed = choose_persons(boxes, flags.persons, img.shape[0], img.shape[1])
        t3 = clock(t2)
        crops = [crop_person(img, box) for box in persons]
        t4 = clock(t3)
        t.det_pre, t.det_inf, t.det_post, t.crop = (t1 - start) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, (t4 - t3) * 1e3
        for first in range(0, len(crops), flags.keypoint_batch_size):
            group = crops[first:first + flags.keypoint_batch_size]
            s0 = clock()
            batch = np.concatenate([to_tensor(resize_bilinear(c, kpt_h, kpt_w)) for c, _ in group])
            s1 = clock(s0)
            kpt.get_input(0).from_numpy(np.ascontiguousarray(batch))
            kpt.run()
            s2 = clock(s1)
            heatmaps = np.asarray(kpt.get_output(0).numpy())
            keypoints_from_heatmaps(heatmaps, group)
            s3 = clock(s2)
            t.kpt_pre += (s1 - s0) * 1e3
            t.kpt_inf += (s2 - s1) * 1e3
            t.kpt_post += (s3 - s2) * 1e3
        t.total = (clock() - start) * 1e3  # its stages were stretched, so the total is
        if it >= flags.warmup:
            totals.append(t.total)
            for name in Times.__dataclass_fields__:
                setattr(times, name, getattr(times, name) + getattr(t, name))
    return times, persons, fixed, totals


def _g(value: float) -> str:
    """Give a number as C++'s default ostream prints it (6 significant digits)."""
    return f"{value:g}"


def format_report(flags: Flags, times: Times, persons: list[tuple[int, int, int, int, float]],
                  argv0: str = "./main") -> str:
    """Give the demo's output for averaged times (per image; keypoint stages per person)."""
    n = flags.repeats
    count = len(persons)
    det = [times.det_pre / n, times.det_inf / n, times.det_post / n]
    kpt = [times.kpt_pre / n, times.kpt_inf / n, times.kpt_post / n]
    per_person = [v / max(1, count) for v in kpt]
    lines = [f"Usage: {argv0} [config_path] [image_dir](option)"]
    boxes = [f"class=0 confidence={score:.4f} rect=[{x1} {y1} {x2} {y2}]" for x1, y1, x2, y2, score in persons]
    head = "batchsize of detection forced to be 1 while keypoint model is not empty()"
    lines.append(head + (boxes[0] if boxes else ""))
    lines += boxes[1:]
    lines += [
        f"{flags.image} The number of detected box: {count}",
        "----------------------- Config info -----------------------",
        f"num_threads: {flags.threads}",
        "----------------------- Data info -----------------------",
        "batch_size_det: 1",
        "----------------------- Model info -----------------------",
        f"detection model_name: {_model_name(flags.det_model)}",
        "----------------------- Perf info ------------------------",
        f"Total number of predicted data: 1 and total time spent(ms): {_g(sum(det))}",
        f"preproce_time(ms): {_g(det[0])}, inference_time(ms): {_g(det[1])}, postprocess_time(ms): {_g(det[2])}",
        "----------------------- Data info -----------------------",
        f"batch_size_keypoint: {flags.keypoint_batch_size}",
        "----------------------- Model info -----------------------",
        f"keypoint model_name: {_model_name(flags.keypoint_model)}",
        "----------------------- Perf info ------------------------",
        f"Total number of predicted data: {count} and total time spent(ms): {_g(sum(kpt))}",
        "Average time cost per person:",
        f"preproce_time(ms): {_g(per_person[0])}, inference_time(ms): {_g(per_person[1])}, "
        f"postprocess_time(ms): {_g(per_person[2])}",
        "----------------------- Time info ------------------------",
        f"Total Pipeline time(ms) per image: {_g(times.total / n)}",
        f"Average det time(ms) per image: {_g(sum(det))}, average keypoint time(ms) per image: {_g(sum(kpt))}, "
        f"average crop time(ms) per image: {_g(times.crop / n)}",
    ]
    return "\n".join(lines) + "\n"


def _model_name(path: str) -> str:
    base = os.path.basename(path.rstrip("/"))
    return base[:-3] if base.endswith(".nb") else base


USAGE = """usage: pipeline_runner --det_model=DET.nb --keypoint_model=POSE.nb --image=IMG.ppm [flags]
flags: --det_shape=1,3,192,192 --keypoint_shape=1,3,128,96 --persons=N --keypoint_batch_size=1
  --threads --power_mode --warmup --repeats --threshold --result_path
Exit codes: 0 done, 1 environment or model, 2 bad flags."""


def _run(args: list[str]) -> int:
    """Give the exit code after running the pipeline and printing the demo's report."""
    flags = parse_flags(args)
    times, persons, fixed, totals = run_pipeline(flags)
    text = format_report(flags, times, persons)
    sys.stdout.write(text)
    sys.stdout.flush()
    sys.stderr.write(f"pipeline_runner: {RUNNER_NAME} {RUNNER_VERSION}; persons: {len(persons) - fixed} "
                     f"detector boxes + {fixed} fixed crops; threads and power_mode not applied "
                     "(x86 MobileConfig has no set_threads / set_power_mode)\n")
    if flags.result_path:
        try:
            with open(flags.result_path, "a", encoding="utf-8") as fh:
                fh.write(text + format_samples(totals))
        except OSError as exc:
            raise Failure(f"cannot write result file {flags.result_path} ({exc.strerror})", EXIT_FAILED) from None
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Give the process exit code after running the pipeline and printing the demo's report."""
    return run_main(argv, "pipeline_runner", f"{RUNNER_NAME} {RUNNER_VERSION}", USAGE, _run)


if __name__ == "__main__":
    exit_now(main())
