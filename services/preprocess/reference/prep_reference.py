#!/usr/bin/env python3
"""Reference implementation of the tfesi-prep spec in pydicom + numpy + scipy.

It is the independent check of the Rust pipeline (services/preprocess/src/prepare.rs), and the
baseline of its benchmark: what a retraining engineer would write in Python. The spec and its
reasons are in docs/preprocessing.md; keep both implementations in step with it.

Usage:
  prep_reference.py --out tensor.f32 FILE.dcm [FILE.dcm ...]    # tensor as raw float32 [S,H,W]
  prep_reference.py --bench N FILE.dcm [...]                    # time N runs, print JSON timings

Prints a JSON object with the tensor's metadata (or the timings) on stdout. Exit status 2 and
a JSON {"error": ...} when the series does not meet the spec.
"""

import argparse
import json
import math
import sys
import time

import numpy as np
import pydicom
from scipy import ndimage

SPEC_V1 = {
    "version": "tfesi-prep-v1",
    "slices": 11,
    "spacing_mm": 1.0,
    "height": 256,
    "width": 256,
    "lower_percentile": 0.5,
    "upper_percentile": 99.5,
    "gaussian_truncate": 4.0,
    "spine_profile_sigma_mm": 5.0,
    "spine_search_fraction": 0.8,
}


class SpecError(Exception):
    pass


def _first(seq_owner, keyword):
    seq = getattr(seq_owner, keyword, None)
    return seq[0] if seq else None


def _group(ds, frame, macro):
    per_frame = getattr(ds, "PerFrameFunctionalGroupsSequence", None)
    if per_frame is not None and frame < len(per_frame):
        item = _first(per_frame[frame], macro)
        if item is not None:
            return item
    shared = _first(ds, "SharedFunctionalGroupsSequence")
    return _first(shared, macro) if shared is not None else None


def _rescale(ds, frame):
    def from_item(item):
        slope = getattr(item, "RescaleSlope", None)
        intercept = getattr(item, "RescaleIntercept", None)
        if slope is None and intercept is None:
            return None
        slope = 1.0 if slope is None else float(slope)
        intercept = 0.0 if intercept is None else float(intercept)
        if not (math.isfinite(slope) and 1e-6 <= abs(slope) <= 1e6):
            raise SpecError(f"rescale slope {slope} not sane")
        if not (math.isfinite(intercept) and abs(intercept) <= 1e6):
            raise SpecError(f"rescale intercept {intercept} not sane")
        return slope, intercept

    top = from_item(ds)
    if top is not None:
        return top
    item = _group(ds, frame, "PixelValueTransformationSequence")
    found = from_item(item) if item is not None else None
    return found if found is not None else (1.0, 0.0)


def _geometry(ds, frame):
    enhanced = "PerFrameFunctionalGroupsSequence" in ds or "SharedFunctionalGroupsSequence" in ds
    if enhanced:
        pos_src = _group(ds, frame, "PlanePositionSequence")
        ori_src = _group(ds, frame, "PlaneOrientationSequence")
        spc_src = _group(ds, frame, "PixelMeasuresSequence")
    else:
        pos_src = ori_src = spc_src = ds
    position = np.array([float(v) for v in pos_src.ImagePositionPatient])
    orientation = np.array([float(v) for v in ori_src.ImageOrientationPatient])
    row = orientation[:3] / np.linalg.norm(orientation[:3])
    col = orientation[3:] / np.linalg.norm(orientation[3:])
    spacing = np.array([float(v) for v in spc_src.PixelSpacing])
    return position, row, col, spacing


def read_frames(paths, geometry=True):
    """Decode every frame: (rescaled float64 image, position, row dir, column dir, spacing)."""
    frames = []
    for path in paths:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
        count = int(getattr(ds, "NumberOfFrames", 1) or 1)
        if count == 1:
            pixels = pixels[None]
        for frame in range(count):
            slope, intercept = _rescale(ds, frame)
            image = pixels[frame].astype(np.float64) * slope + intercept
            frames.append((image,) + (_geometry(ds, frame) if geometry else (None,) * 4))
    return frames


def order_and_select(frames, spec):
    row, col = frames[0][2], frames[0][3]
    normal = np.cross(row, col)
    obliquity = math.degrees(math.acos(min(1.0, abs(normal[0]))))
    if obliquity > 30.0:
        raise SpecError(f"not sagittal: {obliquity:.1f} degrees")
    axis = -normal if normal[0] < 0 else normal
    positions = np.array([frame[1] @ axis for frame in frames])
    order = np.argsort(positions, kind="stable")
    gaps = np.diff(positions[order])
    if len(gaps) and gaps.min() < 0.01:
        raise SpecError("duplicated slice")
    if len(gaps) and gaps.max() > 1.5 * np.median(gaps):
        raise SpecError("missing slice")
    if len(frames) < spec["slices"]:
        raise SpecError(f"{len(frames)} slices, at least {spec['slices']} needed")
    first = (len(frames) - spec["slices"]) // 2
    return [frames[i] for i in order[first:first + spec["slices"]]], first


def normalise(images, spec):
    low, high = np.percentile(np.concatenate([im.ravel() for im in images]),
                              [spec["lower_percentile"], spec["upper_percentile"]])
    if high - low <= 1e-6 * max(abs(high), 1.0):
        raise SpecError("blank series")
    return [np.clip((im - low) / (high - low), 0.0, 1.0) for im in images], float(low), float(high)


def locate_spine(image, row, col, spacing, spec):
    vertical_is_rows = abs(col[2]) >= abs(row[2])
    if vertical_is_rows:
        profile, across_spacing = np.median(image, axis=0), spacing[1]
    else:
        profile, across_spacing = np.median(image, axis=1), spacing[0]
    smoothed = ndimage.gaussian_filter1d(profile, spec["spine_profile_sigma_mm"] / across_spacing,
                                         mode="nearest", truncate=spec["gaussian_truncate"])
    n = len(smoothed)
    margin = math.floor((1.0 - spec["spine_search_fraction"]) / 2.0 * n)
    end = min(max(n - margin, margin + 1), n)
    best = margin + int(np.argmax(smoothed[margin:end]))
    along_centre = ((image.shape[0] if vertical_is_rows else image.shape[1]) - 1) / 2.0
    return (along_centre, float(best)) if vertical_is_rows else (float(best), along_centre)


def _unit(v):
    return v / np.linalg.norm(v)


def prepare(paths, spec=SPEC_V1, timings=None):
    t0 = time.perf_counter()
    frames = read_frames(paths)
    t1 = time.perf_counter()
    chosen, first = order_and_select(frames, spec)
    images, low, high = normalise([f[0] for f in chosen], spec)
    t2 = time.perf_counter()
    centre = spec["slices"] // 2
    _, c_pos, c_row, c_col, c_spacing = chosen[centre]
    centre_px = locate_spine(images[centre], c_row, c_col, c_spacing, spec)
    centre_mm = c_pos + c_row * c_spacing[1] * centre_px[1] + c_col * c_spacing[0] * centre_px[0]
    normal = np.cross(c_row, c_col)
    inferior = np.array([0.0, 0.0, -1.0])
    inferior = _unit(inferior - (inferior @ normal) * normal)
    posterior = np.array([0.0, 1.0, 0.0])
    posterior = posterior - (posterior @ normal) * normal
    posterior = _unit(posterior - (posterior @ inferior) * inferior)
    factors = spec["spacing_mm"] / c_spacing
    sigma = [(f - 1.0) / 2.0 if f > 1.0 else 0.0 for f in factors]
    t = spec["spacing_mm"]
    i, j = np.meshgrid(np.arange(spec["height"], dtype=np.float64) - (spec["height"] - 1) / 2.0,
                       np.arange(spec["width"], dtype=np.float64) - (spec["width"] - 1) / 2.0,
                       indexing="ij")
    out = np.empty((spec["slices"], spec["height"], spec["width"]), dtype=np.float32)
    for k, (image, (_, pos, row, col, spacing)) in enumerate(zip(images, chosen)):
        blurred = ndimage.gaussian_filter(image, sigma=sigma, mode="nearest",
                                          truncate=spec["gaussian_truncate"]) if any(sigma) else image
        points = (centre_mm - pos)[None, None, :] + t * (i[..., None] * inferior + j[..., None] * posterior)
        rows = points @ col / spacing[0]
        cols = points @ row / spacing[1]
        out[k] = ndimage.map_coordinates(blurred, [rows, cols], order=1, mode="grid-constant", cval=0.0)
    t3 = time.perf_counter()
    if timings is not None:
        timings.append({"decode_ms": (t1 - t0) * 1e3, "normalise_ms": (t2 - t1) * 1e3,
                        "resample_ms": (t3 - t2) * 1e3, "total_ms": (t3 - t0) * 1e3})
    meta = {"spec_version": spec["version"], "first_slice": first, "centre_px": list(centre_px),
            "intensity_low": low, "intensity_high": high, "shape": list(out.shape)}
    return out, meta


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="write the tensor as raw little-endian float32")
    parser.add_argument("--bench", type=int, default=0, help="time this many runs")
    parser.add_argument("--stage", choices=["tensor", "normalise"], default="tensor",
                        help="normalise: only decode, rescale and normalise every frame of the files")
    parser.add_argument("--spec-json", help="override spec values (tests only), a JSON object")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    spec = dict(SPEC_V1, **json.loads(args.spec_json)) if args.spec_json else SPEC_V1
    if args.stage == "normalise":
        images, low, high = normalise([frame[0] for frame in read_frames(args.files, geometry=False)], spec)
        if args.out:
            np.concatenate([im.ravel() for im in images]).astype("<f4").tofile(args.out)
        print(json.dumps({"intensity_low": low, "intensity_high": high}))
        return 0
    try:
        if args.bench:
            timings = []
            for _ in range(args.bench):
                prepare(args.files, spec, timings=timings)
            print(json.dumps({"runs": timings}))
            return 0
        tensor, meta = prepare(args.files, spec)
    except SpecError as error:
        print(json.dumps({"error": str(error)}))
        return 2
    if args.out:
        tensor.astype("<f4").tofile(args.out)
    print(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
