"""Tests of deploy/validate.py and kustomize_lite: the real overlays pass, and every deliberately
broken fixture under deploy/tests/fixtures is rejected with the problem it was broken for.

Run: .venv/bin/python -m unittest discover -s deploy/tests -v   (deploy/test.sh does this)
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.dirname(HERE)
sys.path.insert(0, DEPLOY)

import validate  # noqa: E402
from kustomize_lite import KustomizeError, json6902, render_dir, strategic_merge  # noqa: E402

FIXTURES = os.path.join(HERE, "fixtures")


def overlay_problems(name: str) -> list[str]:
    report = validate.Report()
    validate.check_overlay(os.path.join(FIXTURES, name), report)
    return report.problems


class RealTreeTest(unittest.TestCase):
    def test_every_overlay_renders_and_passes(self) -> None:
        for overlay in validate.default_overlays():
            report = validate.Report()
            objects = validate.check_overlay(overlay, report)
            self.assertGreater(len(objects), 40, overlay)
            self.assertEqual(report.problems, [], overlay)

    def test_compose_and_dockerfile_pass(self) -> None:
        report = validate.Report()
        stages = validate.check_dockerfile(os.path.join(DEPLOY, "docker", "Dockerfile"), report)
        validate.check_compose(os.path.join(DEPLOY, "compose.yaml"), stages, report)
        self.assertEqual(report.problems, [])

    def test_gpu_overlay_really_differs_from_cpu(self) -> None:
        def inference(overlay: str) -> dict:
            objects = render_dir(os.path.join(DEPLOY, "k8s", "overlays", overlay))
            return next(o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == "tfesi-inference")

        gpu, cpu = inference("prod-gpu"), inference("prod-cpu")
        gpu_main = gpu["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(gpu_main["resources"]["limits"]["nvidia.com/gpu"], 1)
        self.assertEqual(gpu_main["image"], "registry.example.invalid/tfesi/inference-gpu:0.1.0")
        self.assertNotIn("nvidia.com/gpu", cpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"])
        # the merge kept the base's ports and probes beside the patched resources
        self.assertIn("readinessProbe", gpu_main)


class BrokenFixturesTest(unittest.TestCase):
    def assertProblem(self, problems: list[str], fragment: str) -> None:
        self.assertTrue(any(fragment in p for p in problems), f"no problem contains {fragment!r}: {problems}")

    def test_missing_probe(self) -> None:
        self.assertProblem(overlay_problems("missing-probe"), "container registry: livenessProbe is missing")

    def test_latest_image(self) -> None:
        self.assertProblem(overlay_problems("latest-image"), "image 'tfesi/registry:latest' is not pinned")

    def test_inference_egress(self) -> None:
        self.assertProblem(overlay_problems("inference-egress"), "tfesi-inference: egress differs")

    def test_schema_typo(self) -> None:
        self.assertProblem(overlay_problems("schema-typo"), "Deployment/tfesi-ingest fails the Kubernetes")

    def test_writable_root_and_missing_limit(self) -> None:
        problems = overlay_problems("writable-root")
        self.assertProblem(problems, "container preprocess: readOnlyRootFilesystem must be true")
        self.assertProblem(problems, "container preprocess: resources.limits.memory is missing")

    def test_gpu_overlay_without_gpu(self) -> None:
        self.assertProblem(overlay_problems("broken-gpu"), "must limit nvidia.com/gpu to 1")

    def test_unsupported_kustomize_field_is_refused(self) -> None:
        self.assertProblem(overlay_problems("unsupported-field"), "fields not supported by this renderer")

    def test_undeclared_secret(self) -> None:
        self.assertProblem(overlay_problems("missing-secret"), "references Secret tfesi-undeclared/url")

    def test_unknown_config_key_is_refused_by_the_binary(self) -> None:
        if validate.find_binary("tfesi-inference") is None:
            self.skipTest("tfesi-inference is not built (cargo build -p tfesi-inference)")
        self.assertProblem(overlay_problems("bad-config-key"), "tfesi-inference refuses its configuration")

    def test_broken_compose(self) -> None:
        report = validate.Report()
        stages = validate.check_dockerfile(os.path.join(DEPLOY, "docker", "Dockerfile"), validate.Report())
        validate.check_compose(os.path.join(FIXTURES, "compose-broken.yaml"), stages, report)
        self.assertProblem(report.problems, "image 'tfesi/registry:latest' is not pinned")
        self.assertProblem(report.problems, "depends on unknown service postgress")
        self.assertProblem(report.problems, "must run as a non-root user")
        self.assertProblem(report.problems, "missing service inference")

    def test_root_dockerfile(self) -> None:
        report = validate.Report()
        validate.check_dockerfile(os.path.join(FIXTURES, "Dockerfile-root"), report)
        self.assertProblem(report.problems, "target registry does not end as a non-root USER")

    def test_cli_exits_non_zero(self) -> None:
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            self.assertEqual(validate.main(["--overlay", os.path.join(FIXTURES, "latest-image")]), 1)
            self.assertEqual(validate.main(["--overlay", os.path.join(DEPLOY, "k8s", "overlays", "dev")]), 0)
        self.assertIn("validate: FAILED (2 problems", output.getvalue())


class RendererTest(unittest.TestCase):
    def test_strategic_merge_merges_containers_by_name(self) -> None:
        base = {"containers": [{"name": "a", "image": "x:1", "env": [{"name": "K", "value": "1"}]},
                               {"name": "b", "image": "y:1"}]}
        patch = {"containers": [{"name": "a", "env": [{"name": "K", "value": "2"}, {"name": "L", "value": "3"}]}]}
        merged = strategic_merge(base, patch)
        self.assertEqual(merged["containers"][0]["image"], "x:1")
        self.assertEqual(merged["containers"][0]["env"], [{"name": "K", "value": "2"}, {"name": "L", "value": "3"}])
        self.assertEqual(merged["containers"][1], {"name": "b", "image": "y:1"})

    def test_strategic_merge_null_deletes_and_other_lists_replace(self) -> None:
        merged = strategic_merge({"a": 1, "args": ["x", "y"]}, {"a": None, "args": ["z"]})
        self.assertEqual(merged, {"args": ["z"]})

    def test_json6902_replace_of_missing_path_fails(self) -> None:
        obj = {"kind": "X", "metadata": {"name": "n"}, "spec": {}}
        with self.assertRaises(KustomizeError):
            json6902(obj, [{"op": "replace", "path": "/spec/missing", "value": 1}])
        self.assertEqual(json6902(obj, [{"op": "add", "path": "/spec/n", "value": 1}])["spec"], {"n": 1})


if __name__ == "__main__":
    unittest.main()
