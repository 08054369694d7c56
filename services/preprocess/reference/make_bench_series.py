#!/usr/bin/env python3
"""Write one synthetic T2 sagittal phantom series in several transfer syntaxes, for the benchmark.

Usage: make_bench_series.py OUTDIR [--slices 15 --size 384 --spacing 0.78125]
Creates OUTDIR/<syntax>/NNN.dcm for explicit-le, implicit-le, deflated, rle, j2k-lossless.
Everything written is synthetic (a parametric phantom), marked so in SeriesDescription.
"""

import argparse
import os

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian,
                         ImplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid)


def phantom(x, y, z, rng):
    value = np.full(y.shape, 640.0)
    level = np.mod(z + 400.0, 38.0)
    body = (np.abs(x) < 25) & (y >= -35) & (y < 0)
    value[body] = np.where(level[body] < 9.0, 1100.0 - 20.0 * np.abs(x[body]), 520.0)
    canal = (np.abs(x) < 12) & (y >= 2) & (y < 17)
    value[canal] = 1900.0 - 30.0 * np.abs(x[canal])
    value[(y >= 17) & (y < 45)] = 300.0
    value[(y >= 78) & (y < 95)] = 1250.0
    value[(y < -70) | (y > 95)] = 20.0
    return np.clip(value + rng.normal(0.0, 15.0, y.shape), 0, 4095).astype(np.uint16)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("outdir")
    parser.add_argument("--slices", type=int, default=15)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--spacing", type=float, default=0.78125)
    parser.add_argument("--slice-spacing", type=float, default=4.0)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    n, ps = args.size, args.spacing
    series_uid, study_uid = generate_uid(), generate_uid()
    r, c = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    syntaxes = {"explicit-le": ExplicitVRLittleEndian, "implicit-le": ImplicitVRLittleEndian,
                "deflated": DeflatedExplicitVRLittleEndian, "rle": RLELossless,
                "j2k-lossless": JPEG2000Lossless}
    for k in range(args.slices):
        x = (k - (args.slices - 1) / 2) * args.slice_spacing
        origin = np.array([x, 10.0 - ps * (n - 1) / 2, -20.0 + ps * (n - 1) / 2])
        pixels = phantom(np.full((n, n), x), origin[1] + c * ps, origin[2] - r * ps, rng)
        for name, uid in syntaxes.items():
            ds = Dataset()
            ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
            ds.SOPInstanceUID = generate_uid()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
            ds.Modality = "MR"
            ds.SeriesDescription = "SYNTHETIC T2 SAG (benchmark phantom)"
            ds.InstanceNumber = k + 1
            ds.ImagePositionPatient = [f"{v:.6f}" for v in origin]
            ds.ImageOrientationPatient = ["0", "1", "0", "0", "0", "-1"]
            ds.PixelSpacing = [f"{ps:.6f}", f"{ps:.6f}"]
            ds.SliceThickness = f"{args.slice_spacing:.6f}"
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.Rows, ds.Columns = n, n
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
            ds.PixelData = pixels.tobytes()
            ds.file_meta = FileMetaDataset()
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            if uid in (RLELossless, JPEG2000Lossless):
                ds.compress(uid)
            else:
                ds.file_meta.TransferSyntaxUID = uid
            folder = os.path.join(args.outdir, name)
            os.makedirs(folder, exist_ok=True)
            ds.save_as(os.path.join(folder, f"{k:03d}.dcm"), enforce_file_format=True)


if __name__ == "__main__":
    main()
