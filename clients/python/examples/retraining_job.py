"""A retraining job's calls, end to end (the training itself is left out).

    python clients/python/examples/retraining_job.py [--onnx model.onnx --card model.json]

Against the stack of `tfesi dev` (default addresses 127.0.0.1:50051..50054); set
TFESI_CLIENT_INFERENCE, TFESI_CLIENT_REGISTRY, ..., TFESI_CLIENT_TOKEN to point elsewhere.
"""

from __future__ import annotations

import argparse

from tfesi_client import NotFoundError, TfesiClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", help="model.onnx of a new version to register as shadow")
    parser.add_argument("--card", help="its model.json")
    args = parser.parse_args()

    with TfesiClient.from_env() as client:
        # 1. Freeze the labeled data as of now, split per patient with a fixed seed.
        created = client.create_snapshot(split_seed=7, require_study=True, description="nightly retrain")
        snapshot = created.snapshot
        print(
            f"snapshot {snapshot.snapshot_id}: {snapshot.row_count} rows, "
            f"{snapshot.good_count} good / {snapshot.poor_count} poor (created={created.created})"
        )

        # 2. Read it: as dicts (or export.to_arrow() / export.to_pandas() with pyarrow / pandas).
        export = client.export_snapshot(snapshot.snapshot_id)
        for row in export.to_dicts()[:3]:
            print(row["episode_id"], row["split"], row["label"])

        # 3. Training tensors, identical to what inference sees (needs tfesi-preprocess).
        for example in client.iter_training_examples(export, split="train"):
            print(example.row["episode_id"], example.label, example.tensor.shape)

        # 4. Register the trained model as shadow; promote it later, roll back if needed.
        if args.onnx and args.card:
            registered = client.register_model(args.onnx, args.card, set_as_shadow=True)
            print("registered", registered.model.card.model, "created =", registered.created)

        listing = client.list_models()
        print("champion", listing.champion, "shadow", listing.shadow)
        if listing.champion is not None:
            try:
                performance = client.model_performance(listing.champion)
                print(
                    "prospective AUC",
                    performance.metrics.auc if performance.metrics.HasField("auc") else None,
                )
            except NotFoundError as error:  # no stored prediction of that model yet
                print("no performance yet:", error.message)


if __name__ == "__main__":
    main()
