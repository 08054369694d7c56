"""Builds the deterministic test model `tfesi-test` and its card (model.json).

The model follows the model contract of /work/shared/DESIGN.md: input `image` float32
[N, S, H, W] (dynamic N), input `clinical` float32 [N, F], output `p_good_outcome` float32 [N].
Graph: Conv(S->4, 5x5, stride 4) -> Relu -> GlobalAveragePool -> concat clinical -> MatMul + bias
-> Sigmoid. Weights come from a fixed seed, so the same script always writes the same bytes.

The self-test vectors in the card are computed here with onnxruntime (standing in for the
training framework until the trained model exists). Their inputs are described by a
deterministic pattern rather than stored inline (one 11x256x256 image is 2.4 MB of floats):
    k_i     = (multiplier * i + increment) mod modulus        (exact integer arithmetic)
    value_i = float32(offset) + float32(scale) * float32(k_i)  (two float32 operations)
so any implementation reproduces them bit for bit.

Usage: python make_test_model.py OUT_DIR [--version V] [--seed N]
(writes OUT_DIR/model.onnx and OUT_DIR/model.json). The committed default model is
`models/tfesi-test/1` (version 1, the default seed); the integration tests use a second version
with another seed from services/inference/tests/fixtures/.
"""

import argparse

import hashlib
import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

MODEL_NAME = "tfesi-test"
MODEL_VERSION = "1"
# Preprocessing spec the tensors must come from (services/preprocess/src/spec.rs).
SPEC_VERSION = "tfesi-prep-v1"
SLICES, HEIGHT, WIDTH = 11, 256, 256
CLINICAL_FEATURES = [
    ("baseline_leg_nrs", "leg pain NRS-11 before the injection, 0 to 10, divided by 10"),
    ("age_years", "age at injection in years, divided by 100"),
    ("level_l4_l5", "1 if the injected foramen is L4-L5, else 0"),
    ("level_l5_s1", "1 if the injected foramen is L5-S1, else 0"),
    ("side_left", "1 if injected on the left only, else 0"),
    ("indication_stenosis", "1 for spinal stenosis, 0 for herniated disc"),
    ("sex_female", "1 if female, else 0"),
    ("symptom_duration_lt_3_months", "1 if symptoms lasted under 3 months, else 0"),
]
CONV_CHANNELS = 4
THRESHOLD = 0.5
SEED = 20261126


def build_model(seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    features = len(CLINICAL_FEATURES)
    conv_w = (rng.standard_normal((CONV_CHANNELS, SLICES, 5, 5)) * 0.2).astype(np.float32)
    conv_b = (rng.standard_normal(CONV_CHANNELS) * 0.1).astype(np.float32)
    dense_w = (rng.standard_normal((CONV_CHANNELS + features, 1)) * 0.5).astype(np.float32)
    dense_b = np.array([0.1], dtype=np.float32)
    flat_shape = np.array([-1], dtype=np.int64)

    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"],
                         kernel_shape=[5, 5], strides=[4, 4], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["image_features"], axis=1),
        helper.make_node("Concat", ["image_features", "clinical"], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "dense_w"], ["logit_no_bias"]),
        helper.make_node("Add", ["logit_no_bias", "dense_b"], ["logit"]),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
        helper.make_node("Reshape", ["probability", "flat_shape"], ["p_good_outcome"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tfesi_test",
        inputs=[
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", SLICES, HEIGHT, WIDTH]),
            helper.make_tensor_value_info("clinical", TensorProto.FLOAT, ["N", features]),
        ],
        outputs=[helper.make_tensor_value_info("p_good_outcome", TensorProto.FLOAT, ["N"])],
        initializer=[
            numpy_helper.from_array(conv_w, "conv_w"),
            numpy_helper.from_array(conv_b, "conv_b"),
            numpy_helper.from_array(dense_w, "dense_w"),
            numpy_helper.from_array(dense_b, "dense_b"),
            numpy_helper.from_array(flat_shape, "flat_shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="tfesi make_test_model.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def pattern(shape, multiplier, increment, modulus, scale, offset):
    count = int(np.prod(shape))
    k = (np.arange(count, dtype=np.int64) * multiplier + increment) % modulus
    values = np.float32(offset) + np.float32(scale) * k.astype(np.float32)
    return values.astype(np.float32).reshape(shape)


def self_test_cases():
    """Three cases: one row, three rows, and an all-zero row (constant pattern)."""
    cases = []
    specs = [
        ("one_row", 1, (7919, 17, 1009, 0.004, -2.0), (31, 3, 11, 0.1, 0.0)),
        ("three_rows", 3, (104729, 5, 4099, 0.001, -2.0), (13, 1, 7, 0.15, 0.0)),
        ("zeros", 1, (1, 0, 1, 0.0, 0.0), (1, 0, 1, 0.0, 0.0)),
    ]
    features = len(CLINICAL_FEATURES)
    for name, rows, image_p, clinical_p in specs:
        image_shape = [rows, SLICES, HEIGHT, WIDTH]
        clinical_shape = [rows, features]
        inputs = {
            "image": {"shape": image_shape, "pattern": dict(zip(
                ["multiplier", "increment", "modulus", "scale", "offset"], image_p))},
            "clinical": {"shape": clinical_shape, "pattern": dict(zip(
                ["multiplier", "increment", "modulus", "scale", "offset"], clinical_p))},
        }
        arrays = {key: pattern(spec["shape"], **spec["pattern"]) for key, spec in inputs.items()}
        cases.append((name, inputs, arrays))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--version", default=MODEL_VERSION)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    out_dir = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(args.seed)
    model_bytes = model.SerializeToString()

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    vectors = []
    for name, inputs, arrays in self_test_cases():
        (output,) = session.run(["p_good_outcome"], arrays)
        vectors.append({
            "name": name,
            "inputs": inputs,
            "expected": [float(v) for v in output.astype(np.float32)],
        })

    card = {
        "format": "tfesi-model-card/1",
        "name": MODEL_NAME,
        "version": args.version,
        "description": "UNTRAINED TEST MODEL: fixed random weights (seed %d), no clinical validity. "
                       "Built by services/inference/models/make_test_model.py." % args.seed,
        "synthetic": True,
        "model_sha256": hashlib.sha256(model_bytes).hexdigest(),
        "spec_version": SPEC_VERSION,
        "inputs": [
            {"name": "image", "dtype": "float32", "shape": [None, SLICES, HEIGHT, WIDTH],
             "description": "S central sagittal T2 slices as channels, per the preprocessing spec"},
            {"name": "clinical", "dtype": "float32", "shape": [None, len(CLINICAL_FEATURES)],
             "description": "clinical features in the order of clinical_features"},
        ],
        "clinical_features": [{"name": n, "encoding": e} for n, e in CLINICAL_FEATURES],
        "output": {"name": "p_good_outcome", "dtype": "float32", "shape": [None],
                   "meaning": "probability of a good outcome (NRS-11 reduced by at least 50% two months after the injection)"},
        "threshold": THRESHOLD,
        "training_snapshot_id": None,
        "validation_metrics": {},
        "intended_use": "tests and development of the serving path only",
        "limitations": "random fixed weights, never trained: the output has no clinical meaning whatsoever",
        "self_test": {"tolerance": 1e-5, "vectors": vectors},
    }
    (out_dir / "model.onnx").write_bytes(model_bytes)
    (out_dir / "model.json").write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {out_dir / 'model.onnx'} ({len(model_bytes)} bytes) and {out_dir / 'model.json'}")


if __name__ == "__main__":
    main()
