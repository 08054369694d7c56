"""The committed generated modules equal what generate.py makes from proto/ now."""

from __future__ import annotations

import filecmp
import importlib.util
import pathlib
import sys

import pytest

CLIENT = pathlib.Path(__file__).resolve().parent.parent
COMMITTED = CLIENT / "src" / "tfesi_client" / "_generated"
PROTO = CLIENT.parent.parent / "proto"


def _load_generate() -> object:
    spec = importlib.util.spec_from_file_location("tfesi_client_generate", CLIENT / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _files(root: pathlib.Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_committed_generated_modules_are_fresh(tmp_path: pathlib.Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools not installed (requirements-dev.txt)")
    from importlib.metadata import version

    generate = _load_generate()
    pinned = generate.GRPCIO_TOOLS_VERSION  # type: ignore[attr-defined]
    installed = version("grpcio-tools")
    if installed != pinned:
        pytest.skip(
            f"grpcio-tools {installed} installed, the committed modules use {pinned}: "
            "pip install -r clients/python/requirements-dev.txt"
        )
    if not PROTO.is_dir():
        pytest.skip(f"{PROTO} not found (the client is outside the repository)")
    fresh = tmp_path / "_generated"
    generate.generate(PROTO, fresh)  # type: ignore[attr-defined]

    committed_files, fresh_files = _files(COMMITTED), _files(fresh)
    hint = "regenerate with: python clients/python/generate.py"
    assert committed_files == fresh_files, (
        f"generated file set differs ({hint}); missing: {sorted(fresh_files - committed_files)}, "
        f"extra: {sorted(committed_files - fresh_files)}"
    )
    stale = [
        name for name in sorted(fresh_files) if not filecmp.cmp(COMMITTED / name, fresh / name, shallow=False)
    ]
    assert not stale, f"stale generated files ({hint}): {stale}"


def test_rewritten_imports_point_into_the_package() -> None:
    generate = _load_generate()
    raw = (
        "from tfesi.common.v1 import common_pb2 as x\n"
        "_builder.BuildTopDescriptorsAndMessages(DESCRIPTOR, 'tfesi.registry.v1.registry_pb2', _globals)\n"
        "from google.protobuf import timestamp_pb2\n"
    )
    rewritten = generate.rewrite(raw)  # type: ignore[attr-defined]
    assert "from tfesi_client._generated.tfesi.common.v1 import common_pb2 as x" in rewritten
    assert "'tfesi_client._generated.tfesi.registry.v1.registry_pb2'" in rewritten
    assert "from google.protobuf import timestamp_pb2" in rewritten
    for path in COMMITTED.rglob("*.py*"):
        text = path.read_text(encoding="utf-8")
        assert "from tfesi." not in text and "import tfesi." not in text, path
