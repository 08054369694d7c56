"""The reference retraining job of the TFESI platform (training/README.md).

Snapshot -> tensors (exactly what inference sees) -> a 2.5D CNN in PyTorch -> metrics with
95% CIs -> ONNX with its model card -> ONNX Runtime parity check -> registration as shadow.

The modules that do not need PyTorch (config, features, metrics, card, data) import without
it, so the card and metric rules can be checked anywhere.
"""

__version__ = "0.1.0"
