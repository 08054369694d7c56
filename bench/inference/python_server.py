"""A plain Python gRPC server for tfesi.inference.v1.Inference/Predict: the baseline of the
inference serving benchmark (services/inference/benches/serving.rs), i.e. what a user would
write with grpcio and onnxruntime. One InferenceSession shared by a thread pool, each request's
rows run as one batch, no cross-request batching, no auth, no validation beyond the shape.

    .venv/bin/python bench/inference/python_server.py --model-dir models/tfesi-test/1 --port 50099

Prints "ready <port>" on stdout once it listens on 127.0.0.1; stops on SIGTERM or SIGINT.
"""

import argparse
import json
import pathlib
import signal
import sys
import threading
from concurrent import futures

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "clients" / "python" / "src"))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from tfesi_client._generated.tfesi.common.v1 import common_pb2  # noqa: E402
from tfesi_client._generated.tfesi.inference.v1 import (  # noqa: E402
    inference_pb2,
    inference_pb2_grpc,
)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
PROVIDER_CODES = {"cpu": common_pb2.EXECUTION_PROVIDER_CPU, "cuda": common_pb2.EXECUTION_PROVIDER_CUDA}


class Inference(inference_pb2_grpc.InferenceServicer):
    def __init__(self, model_dir: pathlib.Path, intra_op_threads: int, provider: str):
        card = json.loads((model_dir / "model.json").read_text())
        self.name = card["name"]
        self.version = card["version"]
        self.threshold = float(card["threshold"])
        self.spec_version = card["spec_version"]
        self.features = [feature["name"] for feature in card["clinical_features"]]
        self.image_shape = tuple(next(i for i in card["inputs"] if i["name"] == "image")["shape"][1:])
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        wanted = PROVIDERS[provider]
        self.session = ort.InferenceSession(str(model_dir / "model.onnx"), options, providers=[wanted])
        # onnxruntime falls back to the CPU with only a warning when CUDA cannot be loaded.
        if self.session.get_providers()[0] != wanted:
            sys.exit(f"onnxruntime runs this model on {self.session.get_providers()}, not {wanted}")
        self.provider_code = PROVIDER_CODES[provider]

    def Predict(self, request, context):
        images = []
        clinical = []
        for row in request.rows:
            if tuple(row.image.shape) != self.image_shape:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "image shape does not match the model")
            images.append(np.frombuffer(row.image.data, dtype="<f4").reshape(self.image_shape))
            values = {feature.name: feature.value for feature in row.clinical}
            clinical.append([values[name] for name in self.features])
        outputs = self.session.run(
            None,
            {"image": np.stack(images), "clinical": np.asarray(clinical, dtype=np.float32)},
        )
        response = inference_pb2.PredictResponse()
        for row, probability in zip(request.rows, outputs[0].tolist()):
            result = response.results.add()
            result.row_id = row.row_id
            prediction = result.prediction
            prediction.probability = probability
            prediction.threshold = self.threshold
            prediction.predicted_label = (
                common_pb2.OUTCOME_LABEL_GOOD if probability >= self.threshold else common_pb2.OUTCOME_LABEL_POOR
            )
            prediction.model.name = self.name
            prediction.model.version = self.version
            prediction.execution_provider = self.provider_code
            prediction.role = common_pb2.MODEL_ROLE_CHAMPION
            prediction.spec_version = self.spec_version
            prediction.batch_size = len(request.rows)
        return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=pathlib.Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=8, help="gRPC thread pool size")
    parser.add_argument("--intra-op-threads", type=int, default=1)
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="cpu")
    args = parser.parse_args()

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=args.workers),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    inference_pb2_grpc.add_InferenceServicer_to_server(Inference(args.model_dir, args.intra_op_threads, args.provider), server)
    port = server.add_insecure_port(f"127.0.0.1:{args.port}")
    server.start()
    print(f"ready {port}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop(grace=1).wait()


if __name__ == "__main__":
    main()
