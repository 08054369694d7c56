"""The job's settings: one TOML file laid over configs/default.toml, checked into dataclasses."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import tomllib
from dataclasses import dataclass, field
from typing import Any

#: The image encoders a [model] section can choose (model.py builds them).
ENCODERS = ("stacked", "per_slice")

#: The directory of the shipped configurations; every file is laid over default.toml there.
CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "default.toml"


@dataclass(frozen=True)
class DataConfig:
    source: str = "online"
    snapshot_id: str = ""
    split_seed: int = 7
    fractions: tuple[float, ...] = ()
    label_rule_version: str = ""
    parquet: str = ""
    tensor_dir: str = ""
    spec_version: str = "tfesi-prep-v1"
    auxiliary_key: str = ""


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tfesi-cnn"
    version: str = "auto"
    inputs: str = "image_clinical"
    stem_channels: int = 24
    stage_channels: tuple[int, ...] = (32, 48, 64)
    clinical_hidden: int = 16
    head_hidden: int = 32
    dropout: float = 0.2
    spatial_grid: int = 0
    encoder: str = "stacked"
    slice_channels: tuple[int, ...] = (16, 24, 32, 48)
    slice_pool: int = 2
    slice_columns: int = 96

    @property
    def uses_clinical(self) -> bool:
        return self.inputs == "image_clinical"


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 20261126
    epochs: int = 40
    batch_size: int = 16
    learning_rate: float = 0.002
    weight_decay: float = 0.0001
    patience: int = 8
    min_delta: float = 0.001
    max_shift_px: int = 8
    threads: int = 2
    auxiliary_weight: float = 1.0


@dataclass(frozen=True)
class EvaluationConfig:
    threshold: float = 0.5
    calibration_bins: int = 10
    bootstrap_resamples: int = 0


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 18
    parity_tolerance: float = 1e-5
    self_test_tolerance: float = 1e-4


@dataclass(frozen=True)
class RegisterConfig:
    enabled: bool = True
    set_as_shadow: bool = True


@dataclass(frozen=True)
class CardConfig:
    intended_use: str = ""
    limitations: str = ""


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    register: RegisterConfig = field(default_factory=RegisterConfig)
    card: CardConfig = field(default_factory=CardConfig)
    #: Where it was read from (not part of the hash).
    source_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (without source_path), for logs, hashes and reports."""
        data = dataclasses.asdict(self)
        data.pop("source_path")
        return data

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the settings: same settings, same digest."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def replace(self, section: str, **changes: Any) -> Config:
        """A copy with some fields of one section changed (command-line overrides)."""
        current = getattr(self, section)
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **changes)})


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "evaluation": EvaluationConfig,
    "export": ExportConfig,
    "register": RegisterConfig,
    "card": CardConfig,
}


class ConfigError(ValueError):
    """A configuration file that cannot be used, with the key at fault."""


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = {key: dict(value) if isinstance(value, dict) else value for key, value in base.items()}
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _coerce(section: str, cls: type, values: dict[str, Any]) -> Any:
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"[{section}] {key}: unknown setting (known: {', '.join(known)})")
        default = known[key].default
        if isinstance(default, tuple):
            if not isinstance(value, list):
                raise ConfigError(f"[{section}] {key}: expected a list, got {value!r}")
            value = tuple(value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"[{section}] {key}: expected true or false, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError(f"[{section}] {key}: expected a number, got {value!r}")
            value = float(value)
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"[{section}] {key}: expected an integer, got {value!r}")
        elif isinstance(default, str) and not isinstance(value, str):
            raise ConfigError(f"[{section}] {key}: expected a string, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def check_config(config: Config) -> None:
    """Raises ConfigError for settings that cannot work together."""
    def fail(key: str, why: str) -> None:
        raise ConfigError(f"{key}: {why}")

    if config.data.source not in ("online", "offline"):
        fail("data.source", "must be \"online\" or \"offline\"")
    if config.data.source == "offline" and not (config.data.parquet and config.data.tensor_dir):
        fail("data.parquet", "an offline run needs data.parquet and data.tensor_dir")
    if config.data.fractions and (len(config.data.fractions) != 3 or abs(sum(config.data.fractions) - 1) > 1e-6):
        fail("data.fractions", "three fractions (train, validation, test) summing to 1, or []")
    if config.model.inputs not in ("image_clinical", "image"):
        fail("model.inputs", "must be \"image_clinical\" or \"image\"")
    if not config.model.stage_channels or min(config.model.stage_channels) < 1:
        fail("model.stage_channels", "at least one stage, every width >= 1")
    if config.model.spatial_grid < 0:
        fail("model.spatial_grid", "must be >= 0 (0 = no spatial map)")
    if config.model.encoder not in ENCODERS:
        fail("model.encoder", f"must be one of {', '.join(ENCODERS)}")
    if not config.model.slice_channels or min(config.model.slice_channels) < 1:
        fail("model.slice_channels", "at least one block, every width >= 1")
    if not 1 <= config.model.slice_pool <= 8 or config.model.slice_columns < 8:
        fail("model.slice_pool", "slice_pool in 1..8 and slice_columns >= 8")
    if config.model.slice_columns * config.model.slice_pool > 256:
        fail("model.slice_columns", "slice_columns x slice_pool must fit the 256-pixel tensor width")
    if config.train.auxiliary_weight < 0:
        fail("train.auxiliary_weight", "must be >= 0")
    if config.train.epochs < 1 or config.train.batch_size < 1 or config.train.threads < 1:
        fail("train", "epochs, batch_size and threads must be >= 1")
    if not 0.0 <= config.evaluation.threshold <= 1.0:
        fail("evaluation.threshold", "must be in [0, 1]")
    if config.export.parity_tolerance <= 0 or config.export.self_test_tolerance <= 0:
        fail("export", "tolerances must be > 0")


def load_config(path: str | pathlib.Path | None = None) -> Config:
    """Reads `path` (TOML) laid over configs/default.toml; None gives the defaults."""
    with open(DEFAULT_CONFIG, "rb") as handle:
        merged = tomllib.load(handle)
    if path is not None and pathlib.Path(path).resolve() != DEFAULT_CONFIG:
        try:
            with open(path, "rb") as handle:
                merged = _merge(merged, tomllib.load(handle))
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"{path}: not valid TOML: {error}") from error
    unknown = set(merged) - set(_SECTIONS)
    if unknown:
        raise ConfigError(f"unknown section(s) {sorted(unknown)} (known: {', '.join(_SECTIONS)})")
    sections = {name: _coerce(name, cls, merged.get(name, {})) for name, cls in _SECTIONS.items()}
    config = Config(**sections, source_path=str(path or DEFAULT_CONFIG))
    check_config(config)
    return config
