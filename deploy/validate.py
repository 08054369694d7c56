#!/usr/bin/env python3
"""Offline validation of deploy/: renders every Kubernetes overlay (kustomize_lite), checks each
object against the Kubernetes OpenAPI schemas shipped by kubernetes-validate (strict: unknown
fields are errors), then the project's own rules; checks compose.yaml and the Dockerfile; and,
where the service binaries are built (target/debug or target/release), runs each one with
`--print-config` under the exact TFESI_* environment the manifests give it, so a key the service
would refuse at start is caught here. Exits 1 on any problem, printing every problem.

Usage: validate.py [--overlay DIR ...] [--compose FILE] [--dockerfile FILE] [--out DIR]
       (no arguments: every overlay in k8s/overlays except prod-base, compose.yaml, docker/Dockerfile)
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kustomize_lite import KustomizeError, pod_spec, render_dir  # noqa: E402

DEPLOY = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(DEPLOY)
KUBE_VERSIONS = ("1.31.0", "1.37.0")  # oldest supported cluster and the newest schemas shipped
SERVICES = ("ingest", "preprocess", "inference", "registry", "desk")
PLANNED_BINARIES: set[str] = set()  # binaries not in the workspace yet: their keys cannot be checked
# Who may call whom (besides DNS and the telemetry collector, which every pod may reach).
EXPECTED_EGRESS = {
    "tfesi-ingest": {"external:5432", "external:6379"},
    "tfesi-preprocess": {"external:5432", "external:6379", "tfesi-ingest:50051", "tfesi-inference:50053",
                         "tfesi-registry:50054"},
    "tfesi-inference": set(),
    "tfesi-registry": {"external:5432"},
    "tfesi-desk": {"tfesi-registry:50054", "tfesi-ingest:50051"},
    "tfesi-migrate": {"external:5432"},
    "tfesi-otel-collector": {"external:4317"},
}
SHARED_EGRESS = {"dns:53", "tfesi-otel-collector:4317", "tfesi-otel-collector:4318"}
PLACEHOLDER_URLS = {"DATABASE__URL": "postgres://placeholder@tfesi-postgres:5432/tfesi",
                    "REDIS__URL": "redis://tfesi-redis:6379/0"}


class Report:
    """Collects problems and notes; `ok` is False once any problem was recorded."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.notes: list[str] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def note(self, where: str, message: str) -> None:
        self.notes.append(f"{where}: {message}")

    @property
    def ok(self) -> bool:
        return not self.problems


def name_of(obj: dict) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def image_pinned(image: str) -> bool:
    if "@sha256:" in image:
        return True
    tail = image.rsplit("/", 1)[-1]
    return ":" in tail and not tail.endswith(":latest") and "$" not in image


# ------------------------------------------------------------------------------------------
# Kubernetes


def schema_check(objects: list[dict], where: str, report: Report) -> None:
    from kubernetes_validate import utils as kv

    for obj in objects:
        for version in KUBE_VERSIONS:
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as error:
                path = "/".join(str(p) for p in error.path)
                report.problem(where, f"{name_of(obj)} fails the Kubernetes {version} schema at /{path}: "
                                      f"{error.message}")
                break
            except kv.SchemaNotFoundError as error:
                report.problem(where, f"{name_of(obj)}: {error.message}")
                break


def _containers(obj: dict) -> list[dict]:
    spec = pod_spec(obj) or {}
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def _selects(selector: dict, labels: dict) -> bool:
    if set(selector) - {"matchLabels"}:
        return False  # matchExpressions are not used here; treat as not matching
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _external_secrets(overlay: str) -> dict[str, set[str]]:
    """Secrets listed in external-secrets.txt of the overlay or of any kustomization it builds on."""
    secrets: dict[str, set[str]] = {}
    path = os.path.join(overlay, "external-secrets.txt")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                line = line.split("#", 1)[0].strip()
                if line:
                    name, _, keys = line.partition(":")
                    secrets[name.strip()] = set(keys.split())
    try:
        with open(os.path.join(overlay, "kustomization.yaml"), encoding="utf-8") as handle:
            resources = (yaml.safe_load(handle) or {}).get("resources", [])
    except (OSError, yaml.YAMLError):
        resources = []
    for resource in resources:
        parent = os.path.normpath(os.path.join(overlay, resource))
        if os.path.isdir(parent):
            secrets = {**_external_secrets(parent), **secrets}
    return secrets


def workload_checks(objects: list[dict], overlay: str, where: str, report: Report) -> None:
    by_kind: dict[str, list[dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    present = {(o["kind"], o["metadata"]["name"]) for o in objects}
    external = _external_secrets(overlay)
    workloads = by_kind.get("Deployment", []) + by_kind.get("Job", [])
    hpa_targets = {h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", [])}
    for required in ("tfesi-preprocess", "tfesi-inference"):
        if required not in hpa_targets:
            report.problem(where, f"no HorizontalPodAutoscaler for {required}")
    for target in hpa_targets:
        if ("Deployment", target) not in present:
            report.problem(where, f"HorizontalPodAutoscaler targets missing Deployment {target}")
    for svc in SERVICES:
        if ("Deployment", f"tfesi-{svc}") not in present:
            report.problem(where, f"missing Deployment tfesi-{svc}")
    if not any(j["metadata"]["name"] == "tfesi-migrate" for j in by_kind.get("Job", [])):
        report.problem(where, "missing the migration Job tfesi-migrate")
    for name in ("tfesi-postgres", "tfesi-redis"):
        service = next((s for s in by_kind.get("Service", []) if s["metadata"]["name"] == name), None)
        if service is None or service["spec"].get("type") != "ExternalName":
            report.problem(where, f"{name} must be an ExternalName Service")
    pdb_selectors = [p["spec"]["selector"] for p in by_kind.get("PodDisruptionBudget", [])]
    for obj in workloads:
        label = f"{where}: {name_of(obj)}"
        spec = pod_spec(obj) or {}
        labels = obj["spec"]["template"].get("metadata", {}).get("labels", {})
        pod_security = spec.get("securityContext", {})
        if obj["kind"] == "Deployment":
            if not any(_selects(sel, labels) for sel in pdb_selectors):
                report.problem(label, "no PodDisruptionBudget selects its pods")
            if obj["metadata"]["name"] in hpa_targets and "replicas" in obj["spec"]:
                report.problem(label, "sets spec.replicas although an HPA scales it (each apply would reset it)")
        if spec.get("automountServiceAccountToken") is not False:
            report.problem(label, "automountServiceAccountToken must be false")
        sa = spec.get("serviceAccountName")
        if not sa or ("ServiceAccount", sa) not in present:
            report.problem(label, f"ServiceAccount {sa!r} is not rendered")
        for container in _containers(obj):
            c_label = f"{label} container {container['name']}"
            if not image_pinned(container.get("image", "")):
                report.problem(c_label, f"image {container.get('image')!r} is not pinned to a tag or digest")
            security = container.get("securityContext", {})
            if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
                report.problem(c_label, "runAsNonRoot is not set")
            if security.get("readOnlyRootFilesystem") is not True:
                report.problem(c_label, "readOnlyRootFilesystem must be true")
            if security.get("allowPrivilegeEscalation") is not False:
                report.problem(c_label, "allowPrivilegeEscalation must be false")
            if "ALL" not in security.get("capabilities", {}).get("drop", []):
                report.problem(c_label, "capabilities must drop ALL")
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(section, {}):
                        report.problem(c_label, f"resources.{section}.{resource} is missing")
            is_main = container in spec.get("containers", [])
            if obj["kind"] == "Deployment" and is_main:
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in container:
                        report.problem(c_label, f"{probe} is missing")
                # gRPC probes go to the plaintext health port when there is one (the gRPC port
                # itself is TLS, which the kubelet's gRPC probe cannot speak).
                ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
                probe_port = ports.get("health", ports.get("grpc"))
                for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                    if "grpc" in ports and probe in container and container[probe].get("grpc", {}).get("port") != probe_port:
                        report.problem(c_label, f"{probe} must use the gRPC health protocol on port {probe_port}")
            _reference_checks(container, spec, present, external, c_label, report)
            _prefix_check(container, c_label, report)
    _gpu_checks(objects, where, report)
    _service_checks(by_kind, workloads, where, report)
    network_checks(objects, where, report)


def _reference_checks(container: dict, spec: dict, present: set, external: dict, label: str,
                      report: Report) -> None:
    def need(kind: str, name: str, key: str | None = None) -> None:
        if (kind, name) in present:
            return
        if kind == "Secret":
            base = re.sub(r"-[0-9a-f]{10}$", "", name)
            if base in external and (key is None or key in external[base]):
                return
        report.problem(label, f"references {kind} {name}{'/' + key if key else ''}, which is neither "
                              "rendered nor listed in external-secrets.txt")

    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            need("ConfigMap", source["configMapRef"]["name"])
        if "secretRef" in source:
            need("Secret", source["secretRef"]["name"])
    for env in container.get("env", []):
        ref = env.get("valueFrom", {})
        if "secretKeyRef" in ref:
            need("Secret", ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"])
        if "configMapKeyRef" in ref:
            need("ConfigMap", ref["configMapKeyRef"]["name"])
    mounted = {m["name"] for m in container.get("volumeMounts", [])}
    for volume in spec.get("volumes", []):
        if volume["name"] not in mounted:
            continue
        if "secret" in volume:
            need("Secret", volume["secret"]["secretName"])
        if "configMap" in volume:
            need("ConfigMap", volume["configMap"]["name"])
        if "persistentVolumeClaim" in volume:
            need("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    declared = {v["name"] for v in spec.get("volumes", [])}
    for missing in sorted(mounted - declared):
        report.problem(label, f"mounts volume {missing}, which the pod does not declare")


def _prefix_check(container: dict, label: str, report: Report) -> None:
    binary = _binary_of(container)
    if binary is None:
        return
    prefix = "TFESI_" + binary.removeprefix("tfesi-").upper() + "__"
    for key in _env_keys(container):
        if key.startswith("TFESI_") and not key.startswith(prefix) and key not in ("TFESI_CONFIG", "TFESI_CACHE_DIR"):
            report.problem(label, f"{key} does not belong to {binary} (its prefix is {prefix})")


def _binary_of(container: dict) -> str | None:
    command = container.get("command") or []
    if command and command[0] == "tfesi-migrate":
        return "tfesi-registry"
    match = re.search(r"tfesi/(ingest|preprocess|inference|registry|desk)(?:-gpu)?[:@]", container.get("image", ""))
    if match and container["name"] != "seed-models":
        return f"tfesi-{match.group(1)}"
    return None


def _env_keys(container: dict) -> list[str]:
    return [e["name"] for e in container.get("env", [])]


def _gpu_checks(objects: list[dict], where: str, report: Report) -> None:
    inference = next((o for o in objects if name_of(o) == "Deployment/tfesi-inference"), None)
    if inference is None:
        return
    spec = pod_spec(inference) or {}
    main = next((c for c in spec.get("containers", []) if c["name"] == "inference"), {})
    gpus = main.get("resources", {}).get("limits", {}).get("nvidia.com/gpu")
    wants_gpu = "gpu" in os.path.basename(where.rstrip("/"))
    if wants_gpu:
        if str(gpus) != "1":
            report.problem(where, "GPU overlay: the inference container must limit nvidia.com/gpu to 1")
        if not spec.get("nodeSelector"):
            report.problem(where, "GPU overlay: inference needs a nodeSelector for GPU nodes")
        if not any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations", [])):
            report.problem(where, "GPU overlay: inference needs a toleration for nvidia.com/gpu")
        if "-gpu" not in main.get("image", ""):
            report.problem(where, "GPU overlay: inference must run the inference-gpu image")
    elif gpus is not None:
        report.problem(where, "CPU overlay requests nvidia.com/gpu")


def _service_checks(by_kind: dict, workloads: list[dict], where: str, report: Report) -> None:
    for service in by_kind.get("Service", []):
        if service["spec"].get("type") == "ExternalName":
            continue
        pods = [w for w in workloads
                if _selects({"matchLabels": service["spec"].get("selector", {})},
                            w["spec"]["template"].get("metadata", {}).get("labels", {}))]
        if not pods:
            report.problem(where, f"{name_of(service)} selects no pods")
            continue
        port_names = {p.get("name") for c in _containers(pods[0]) for p in c.get("ports", [])}
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort")
            if isinstance(target, str) and target not in port_names:
                report.problem(where, f"{name_of(service)} targetPort {target} is no named container port")


def _peer_names(peer: dict, workloads: list[dict]) -> list[str]:
    if "ipBlock" in peer:
        return ["external"]
    if "namespaceSelector" in peer:
        labels = peer.get("podSelector", {}).get("matchLabels", {})
        return ["dns"] if labels.get("k8s-app") == "kube-dns" else ["other-namespace"]
    selector = peer.get("podSelector", {})
    return [w["metadata"]["name"] for w in workloads
            if _selects(selector, w["spec"]["template"].get("metadata", {}).get("labels", {}))]


def network_checks(objects: list[dict], where: str, report: Report) -> None:
    workloads = [o for o in objects if o["kind"] in ("Deployment", "Job")]
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    for workload in workloads:
        name = workload["metadata"]["name"]
        labels = workload["spec"]["template"].get("metadata", {}).get("labels", {})
        selecting = [p for p in policies if _selects(p["spec"].get("podSelector", {}), labels)]
        types = {t for p in selecting for t in p["spec"].get("policyTypes", [])}
        if not {"Ingress", "Egress"} <= types:
            report.problem(where, f"{name}: no NetworkPolicy restricts both its ingress and egress")
        reach: set[str] = set()
        for policy in selecting:
            for rule in policy["spec"].get("egress", []):
                ports = [str(p.get("port")) for p in rule.get("ports", [])] or ["*"]
                peers = rule.get("to")
                names = ["external"] if not peers else [n for peer in peers for n in _peer_names(peer, workloads)]
                reach |= {f"{n}:{port}" for n in names for port in ports}
        reach -= SHARED_EGRESS
        if name in EXPECTED_EGRESS and reach != EXPECTED_EGRESS[name]:
            extra = sorted(reach - EXPECTED_EGRESS[name])
            lacking = sorted(EXPECTED_EGRESS[name] - reach)
            report.problem(where, f"{name}: egress differs from what it calls (extra {extra}, missing {lacking})")
        elif name not in EXPECTED_EGRESS:
            report.problem(where, f"{name}: no expected egress is declared in validate.py")


def check_overlay(overlay: str, report: Report, out_dir: str | None = None) -> list[dict]:
    where = os.path.relpath(overlay, REPO)
    try:
        objects = render_dir(overlay)
    except KustomizeError as error:
        report.problem(where, f"cannot render: {error}")
        return []
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, os.path.basename(overlay.rstrip("/")) + ".yaml"), "w", encoding="utf-8") as f:
            yaml.safe_dump_all(objects, f, sort_keys=False)
    schema_check(objects, where, report)
    workload_checks(objects, overlay, where, report)
    config_checks_k8s(objects, where, report)
    return objects


# ------------------------------------------------------------------------------------------
# Configuration keys against the real binaries


def find_binary(name: str) -> str | None:
    # Cargo's target directory may live outside the checkout (CI keeps one between runs).
    target_dir = os.path.join(REPO, os.environ.get("CARGO_TARGET_DIR", "target"))
    for profile in ("debug", "release"):
        path = os.path.join(target_dir, profile, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def run_print_config(binary: str, env: dict[str, str], where: str, report: Report) -> None:
    if binary in PLANNED_BINARIES:
        report.note(where, f"{binary} is planned: its keys {sorted(env)} are not checked")
        return
    path = find_binary(binary)
    if path is None:
        report.note(where, f"{binary} is not built: its {len(env)} TFESI_* keys are not checked "
                           "(cargo build --workspace --bins, then run again)")
        return
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **env}
    result = subprocess.run([path, "--print-config"], env=clean, capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        report.problem(where, f"{binary} refuses its configuration: {result.stderr.strip()}")


def _secret_value(objects: list[dict], name: str, key: str, env_name: str) -> str:
    secret = next((o for o in objects if o["kind"] == "Secret" and o["metadata"]["name"] == name), None)
    if secret is not None and key in secret.get("data", {}):
        return base64.b64decode(secret["data"][key]).decode()
    for suffix, placeholder in PLACEHOLDER_URLS.items():
        if env_name.endswith(suffix):
            return placeholder
    return "placeholder"


def config_checks_k8s(objects: list[dict], where: str, report: Report) -> None:
    for obj in objects:
        for container in (pod_spec(obj) or {}).get("containers", []):
            binary = _binary_of(container)
            if binary is None:
                continue
            env: dict[str, str] = {}
            for source in container.get("envFrom", []):
                ref = source.get("configMapRef")
                config_map = next((o for o in objects if o["kind"] == "ConfigMap"
                                   and ref and o["metadata"]["name"] == ref["name"]), None)
                env.update((config_map or {}).get("data", {}))
            for item in container.get("env", []):
                if "value" in item:
                    env[item["name"]] = str(item["value"])
                elif "secretKeyRef" in item.get("valueFrom", {}):
                    ref = item["valueFrom"]["secretKeyRef"]
                    env[item["name"]] = _secret_value(objects, ref["name"], ref["key"], item["name"])
            env = {k: v for k, v in env.items() if k.startswith("TFESI_")}
            run_print_config(binary, env, f"{where}: {name_of(obj)}", report)


# ------------------------------------------------------------------------------------------
# compose.yaml and the Dockerfile


def dockerfile_stages(path: str) -> dict[str, list[str]]:
    """Stage name -> its instruction lines (continuations joined), ARG defaults substituted in FROM."""
    with open(path, encoding="utf-8") as handle:
        text = re.sub(r"\\\n", " ", handle.read())
    args: dict[str, str] = {}
    stages: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction = line.split(None, 1)[0].upper()
        if instruction == "ARG" and current is None:
            name, _, default = line.split(None, 1)[1].partition("=")
            args[name] = default
        elif instruction == "FROM":
            match = re.match(r"FROM\s+(\S+)(?:\s+AS\s+(\S+))?", line, re.IGNORECASE)
            if not match:
                raise ValueError(f"{path}: cannot parse `{line}`")
            image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), match.group(1))
            current = [f"FROM {image}"]
            stages[match.group(2) or f"stage{len(stages)}"] = current
        elif current is not None:
            current.append(line)
    return stages


def check_dockerfile(path: str, report: Report) -> set[str]:
    where = os.path.relpath(path, REPO)
    try:
        stages = dockerfile_stages(path)
    except (OSError, ValueError) as error:
        report.problem(where, str(error))
        return set()
    runtime_targets = ("ingest", "preprocess", "inference", "inference-gpu", "registry", "cli", "desk")
    for target in runtime_targets + ("builder", "ort-cpu", "ort-gpu"):
        if target not in stages:
            report.problem(where, f"missing stage `{target}`")
    for name, lines in stages.items():
        base = lines[0].split()[1]
        if base not in stages and not image_pinned(base):
            report.problem(where, f"stage {name}: base image {base} is not pinned")
        for line in lines:
            for source in re.findall(r"--from=(\S+)", line):
                if source not in stages:
                    report.problem(where, f"stage {name}: COPY --from={source} names no stage")
            if line.upper().startswith("COPY") and "--from=" not in line:
                for src in line.split()[1:-1]:
                    if not src.startswith("--") and not os.path.exists(os.path.join(REPO, src)):
                        report.problem(where, f"stage {name}: COPY source {src} is not in the repository")
    for target in runtime_targets:
        chain, lines = target, []
        while chain in stages:  # a stage's USER/HEALTHCHECK may come from the stage it builds on
            lines = stages[chain] + lines
            chain = stages[chain][0].split()[1]
        users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
        if not users or users[-1].split(":")[0] in ("0", "root"):
            report.problem(where, f"target {target} does not end as a non-root USER")
        health = [line for line in lines if line.upper().startswith("HEALTHCHECK")]
        if target != "cli" and (not health or health[-1].upper().startswith("HEALTHCHECK NONE")):
            report.problem(where, f"target {target} has no HEALTHCHECK")
        if target.startswith("inference") and not any("libonnxruntime" in line for line in lines):
            report.problem(where, f"target {target} does not carry the ONNX Runtime library")
    if "nvidia/cuda" not in stages.get("inference-gpu", ["FROM ?"])[0]:
        report.problem(where, "inference-gpu must build on an nvidia/cuda runtime image")
    return set(stages)


def check_compose(path: str, stages: set[str], report: Report) -> None:
    where = os.path.relpath(path, REPO)
    try:
        with open(path, encoding="utf-8") as handle:
            compose = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as error:
        report.problem(where, f"cannot parse: {error}")
        return
    services = compose.get("services", {})
    expected = {"postgres", "redis", "otel-collector", "jaeger", "migrate", *SERVICES}
    for missing in sorted(expected - set(services)):
        report.problem(where, f"missing service {missing}")
    secrets, volumes = set(compose.get("secrets", {})), set(compose.get("volumes", {}))
    base_dir = os.path.dirname(path)
    for name, service in services.items():
        label = f"{where}: service {name}"
        if not image_pinned(service.get("image", "")):
            report.problem(label, f"image {service.get('image')!r} is not pinned")
        target = service.get("build", {}).get("target")
        if target and target not in stages:
            report.problem(label, f"build target {target} is not a Dockerfile stage")
        if name not in ("migrate", "jaeger", "otel-collector") and "healthcheck" not in service:
            report.problem(label, "has no healthcheck")
        for dependency, condition in (service.get("depends_on") or {}).items():
            condition = condition.get("condition") if isinstance(condition, dict) else condition
            if dependency not in services:
                report.problem(label, f"depends on unknown service {dependency}")
            elif condition == "service_healthy" and "healthcheck" not in services[dependency]:
                report.problem(label, f"waits for {dependency} to be healthy, which has no healthcheck")
            elif condition not in ("service_started", "service_healthy", "service_completed_successfully"):
                report.problem(label, f"unknown depends_on condition {condition!r}")
        for secret in service.get("secrets", []):
            source = secret if isinstance(secret, str) else secret.get("source")
            if source not in secrets:
                report.problem(label, f"uses undeclared secret {source}")
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                if not os.path.exists(os.path.join(base_dir, source)):
                    report.problem(label, f"bind-mounts missing file {source}")
            elif source not in volumes:
                report.problem(label, f"uses undeclared volume {source}")
        env = {k: str(v) for k, v in (service.get("environment") or {}).items() if k.startswith("TFESI_")}
        env = {k: re.sub(r"\$\{[^}]*\}", "placeholder", v) for k, v in env.items()}
        image = service.get("image", "")
        match = re.search(r"tfesi/(\w+)", image)
        if match and name != "migrate":
            binary = f"tfesi-{match.group(1)}"
            prefix = f"TFESI_{match.group(1).upper()}__"
            for key in env:
                if not key.startswith(prefix):
                    report.problem(label, f"{key} does not belong to {binary}")
            run_print_config(binary, env, label, report)
        elif name == "migrate":
            run_print_config("tfesi-registry", env, label, report)
        if match and service.get("user", "") in ("", "0", "root"):
            report.problem(label, "must run as a non-root user")


# ------------------------------------------------------------------------------------------


def default_overlays() -> list[str]:
    root = os.path.join(DEPLOY, "k8s", "overlays")
    return [os.path.join(root, d) for d in sorted(os.listdir(root))
            if d != "prod-base" and os.path.isdir(os.path.join(root, d))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overlay", action="append", help="kustomization directory (repeatable)")
    parser.add_argument("--compose", help="compose file")
    parser.add_argument("--dockerfile", help="Dockerfile")
    parser.add_argument("--out", help="write each rendered overlay here as <overlay>.yaml")
    args = parser.parse_args(argv)
    everything = not (args.overlay or args.compose or args.dockerfile)
    report = Report()
    dockerfile = args.dockerfile or (os.path.join(DEPLOY, "docker", "Dockerfile") if everything else None)
    stages = check_dockerfile(dockerfile, report) if dockerfile else set()
    if args.compose or everything:
        if not stages:
            stages = check_dockerfile(os.path.join(DEPLOY, "docker", "Dockerfile"), Report())
        check_compose(args.compose or os.path.join(DEPLOY, "compose.yaml"), stages, report)
    for overlay in args.overlay or (default_overlays() if everything else []):
        objects = check_overlay(os.path.abspath(overlay), report, args.out)
        print(f"rendered {os.path.relpath(overlay, REPO)}: {len(objects)} objects")
    if not os.path.isdir(os.path.join(REPO, ".sqlx")):
        report.note("repository", "no .sqlx/ (cargo sqlx prepare --workspace): image builds with "
                                  "SQLX_OFFLINE=true fail until it is committed")
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print(f"validate: {'OK' if report.ok else 'FAILED'} ({len(report.problems)} problems, {len(report.notes)} notes)")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
