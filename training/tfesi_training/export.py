"""ONNX export (dynamic batch), the ONNX Runtime parity check against PyTorch, and the card.

The graph's inputs are `image` [N, S, H, W] and, with the clinical branch, `clinical` [N, F];
its output is `p_good_outcome` [N]. Export uses torch.export (the `dynamo` exporter, opset 18,
the lowest it writes without a lossy down-conversion); ONNX Runtime 1.31 (the service's) runs it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import pathlib
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from tfesi_training.card import (
    CLINICAL_INPUT,
    IMAGE_INPUT,
    OUTPUT_NAME,
    materialize,
    self_test_inputs,
)
from tfesi_training.model import OutcomeCnn


def export_onnx(model: OutcomeCnn, path: str | os.PathLike[str], *, height: int, width: int,
                opset: int = 18) -> str:
    """Writes model.onnx with a dynamic batch dimension; returns its SHA-256."""
    model.eval()
    image = torch.zeros(2, model.slices, height, width)
    batch = torch.export.Dim("N", min=1, max=4096)
    if model.clinical_features:
        args: tuple[Any, ...] = (image, torch.zeros(2, model.clinical_features))
        names = [IMAGE_INPUT, CLINICAL_INPUT]
        dynamic: Any = {"image": {0: batch}, "clinical": {0: batch}}
    else:
        args = (image,)
        names = [IMAGE_INPUT]
        dynamic = {"image": {0: batch}}
    quiet = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        warnings.simplefilter("ignore")
        logging.getLogger("torch").setLevel(logging.ERROR)
        program = torch.onnx.export(
            model, args, dynamo=True, input_names=names, output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic, opset_version=opset, optimize=True, verbose=False,
        )
    assert program is not None
    proto = program.model_proto
    proto.graph.doc_string = "tfesi_training: P(good outcome) from S sagittal slices (synthetic data only)"
    data = proto.SerializeToString()
    target = pathlib.Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def torch_predict(model: OutcomeCnn):  # type: ignore[no-untyped-def]
    """A (image, clinical) -> probabilities function running the PyTorch model in eval mode."""

    @torch.no_grad()
    def run(image: npt.NDArray[np.float32], clinical: npt.NDArray[np.float32] | None) -> npt.NDArray[np.float32]:
        model.eval()
        clinical_tensor = None if clinical is None else torch.from_numpy(np.ascontiguousarray(clinical))
        return model(torch.from_numpy(np.ascontiguousarray(image)), clinical_tensor).numpy().astype(np.float32)

    return run


def onnx_predict(path: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
    """The same function over an ONNX Runtime CPU session of the exported file."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(os.fspath(path), options, providers=["CPUExecutionProvider"])
    input_names = {item.name for item in session.get_inputs()}
    output_names = [item.name for item in session.get_outputs()]
    if output_names != [OUTPUT_NAME]:
        raise ValueError(f"{path}: outputs {output_names}, expected [{OUTPUT_NAME}]")

    def run(image: npt.NDArray[np.float32], clinical: npt.NDArray[np.float32] | None) -> npt.NDArray[np.float32]:
        feeds = {IMAGE_INPUT: np.ascontiguousarray(image, dtype=np.float32)}
        if CLINICAL_INPUT in input_names:
            if clinical is None:
                raise ValueError("the ONNX model takes a clinical input")
            feeds[CLINICAL_INPUT] = np.ascontiguousarray(clinical, dtype=np.float32)
        (output,) = session.run([OUTPUT_NAME], feeds)
        return np.asarray(output, dtype=np.float32)

    run.input_names = input_names  # type: ignore[attr-defined]
    return run


def parity_check(model: OutcomeCnn, onnx_path: str | os.PathLike[str], *, height: int, width: int,
                 real_images: Sequence[npt.NDArray[np.float32]] = (),
                 real_clinical: npt.NDArray[np.float32] | None = None) -> dict[str, Any]:
    """Largest |ONNX Runtime - PyTorch| over the self-test inputs and some real rows (batches of
    1 and of several rows, so the dynamic batch dimension is exercised)."""
    by_torch = torch_predict(model)
    by_onnx = onnx_predict(onnx_path)
    features = model.clinical_features
    cases: list[tuple[str, npt.NDArray[np.float32], npt.NDArray[np.float32] | None]] = []
    for name, inputs in self_test_inputs(model.slices, height, width, features):
        clinical = materialize(inputs[CLINICAL_INPUT]) if CLINICAL_INPUT in inputs else None
        cases.append((f"self_test:{name}", materialize(inputs[IMAGE_INPUT]), clinical))
    if real_images:
        stacked = np.stack([np.asarray(image, dtype=np.float32) for image in real_images])
        clinical_rows = None if real_clinical is None or not features else real_clinical[: len(stacked)]
        cases.append((f"real:{len(stacked)}_rows", stacked, clinical_rows))
        cases.append(("real:1_row", stacked[:1], None if clinical_rows is None else clinical_rows[:1]))
    worst, where, compared = 0.0, "", 0
    for name, image, clinical in cases:
        expected = by_torch(image, clinical if features else None)
        got = by_onnx(image, clinical if features else None)
        if got.shape != expected.shape:
            raise ValueError(f"{name}: ONNX output shape {got.shape}, PyTorch {expected.shape}")
        difference = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
        compared += got.size
        if difference >= worst:
            worst, where = difference, name
    return {"max_abs_difference": worst, "worst_case": where, "values_compared": compared,
            "cases": [name for name, _, _ in cases]}
