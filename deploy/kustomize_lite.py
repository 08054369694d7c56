"""A small, strict subset of kustomize, enough to render deploy/k8s offline (no kustomize here).

Supported kustomization fields: apiVersion, kind, resources (files and directories), namespace,
labels (pairs, includeSelectors, includeTemplates), images (name, newName, newTag, digest),
patches (strategic merge from `path`/`patch`, JSON 6902 with `target`), configMapGenerator and
secretGenerator (literals, files; behavior create/merge/replace). Any other field is an error,
so the renderer never silently differs from kustomize by ignoring something. Generated names get
a content-hash suffix at the top level and every reference (envFrom, env valueFrom, volumes) is
rewritten, as kustomize does (the hash itself is not kustomize's algorithm).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
from typing import Any

import yaml

SUPPORTED_FIELDS = {
    "apiVersion", "kind", "resources", "namespace", "labels", "images", "patches",
    "configMapGenerator", "secretGenerator",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "CustomResourceDefinition", "PriorityClass"}
# Strategic-merge list keys for the fields these manifests patch; other lists are replaced.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "volumes": "name", "env": "name",
    "volumeMounts": "mountPath", "imagePullSecrets": "name", "envFrom": None,
}
POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


class KustomizeError(Exception):
    """A kustomization that cannot be rendered; the message names the file and the cause."""


def _load_yaml_docs(path: str) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            docs = [doc for doc in yaml.safe_load_all(handle) if doc is not None]
    except (OSError, yaml.YAMLError) as error:
        raise KustomizeError(f"{path}: {error}") from error
    for doc in docs:
        if not isinstance(doc, dict) or "kind" not in doc or "metadata" not in doc:
            raise KustomizeError(f"{path}: every document must be an object with kind and metadata")
    return docs


def _key(obj: dict) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def strategic_merge(base: Any, patch: Any, field: str = "") -> Any:
    """Merges `patch` into `base` like a strategic merge patch for the fields these manifests use."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = strategic_merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and MERGE_KEYS.get(field):
        merge_key = MERGE_KEYS[field]
        merged = [copy.deepcopy(item) for item in base]
        for item in patch:
            if not isinstance(item, dict) or merge_key not in item:
                raise KustomizeError(f"strategic merge: every `{field}` item needs `{merge_key}`")
            position = next((i for i, old in enumerate(merged) if old.get(merge_key) == item[merge_key]), None)
            if item.get("$patch") == "delete":
                if position is not None:
                    merged.pop(position)
            elif position is None:
                merged.append(copy.deepcopy(item))
            else:
                merged[position] = strategic_merge(merged[position], item, field)
        return merged
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"JSON patch path `{path}` must start with /")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def json6902(obj: dict, operations: list[dict]) -> dict:
    """Applies JSON 6902 add/replace/remove/test operations."""
    result = copy.deepcopy(obj)
    for operation in operations:
        op, parts = operation.get("op"), _pointer(operation.get("path", ""))
        parent: Any = result
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent.get(part)
            if parent is None:
                raise KustomizeError(f"JSON patch: path {operation['path']} does not exist")
        last = parts[-1]
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op == "add":
                parent.insert(index, copy.deepcopy(operation["value"]))
            elif op == "replace":
                parent[index] = copy.deepcopy(operation["value"])
            elif op == "remove":
                parent.pop(index)
            else:
                raise KustomizeError(f"JSON patch: unsupported op {op}")
            continue
        if op in ("replace", "remove", "test") and last not in parent:
            raise KustomizeError(f"JSON patch: {op} of missing path {operation['path']} in {_key(obj)}")
        if op in ("add", "replace"):
            parent[last] = copy.deepcopy(operation["value"])
        elif op == "remove":
            del parent[last]
        elif op == "test":
            if parent[last] != operation.get("value"):
                raise KustomizeError(f"JSON patch: test failed at {operation['path']}")
        else:
            raise KustomizeError(f"JSON patch: unsupported op {op}")
    return result


def _matches(obj: dict, target: dict) -> bool:
    for field in ("kind", "name", "namespace"):
        if field in target:
            value = obj.get("kind") if field == "kind" else obj["metadata"].get(field)
            if value != target[field]:
                return False
    unknown = set(target) - {"kind", "name", "namespace", "group", "version"}
    if unknown:
        raise KustomizeError(f"patch target fields not supported: {sorted(unknown)}")
    return True


def _generate(root: str, spec: dict, kind: str) -> dict:
    unknown = set(spec) - {"name", "literals", "files", "behavior", "type"}
    if unknown:
        raise KustomizeError(f"{root}: {kind} generator fields not supported: {sorted(unknown)}")
    data: dict[str, str] = {}
    for literal in spec.get("literals", []):
        key, sep, value = literal.partition("=")
        if not sep:
            raise KustomizeError(f"{root}: literal `{literal}` has no `=`")
        data[key] = value
    for entry in spec.get("files", []):
        key, sep, rel = entry.partition("=")
        rel = rel if sep else key
        key = key if sep else os.path.basename(rel)
        path = os.path.normpath(os.path.join(root, rel))
        if not path.startswith(os.path.normpath(root) + os.sep):
            raise KustomizeError(f"{root}: generator file {rel} is outside the kustomization root")
        try:
            with open(path, encoding="utf-8") as handle:
                data[key] = handle.read()
        except OSError as error:
            raise KustomizeError(f"{root}: {error}") from error
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": spec["name"]}}
    if kind == "Secret":
        obj["type"] = spec.get("type", "Opaque")
        obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    else:
        obj["data"] = data
    obj["metadata"]["annotations"] = {"tfesi.io/generated": "true"}
    return obj


def _set_image(container: dict, images: list[dict]) -> None:
    image = container.get("image", "")
    name, digest = (image.split("@", 1) + [""])[:2]
    last_colon = name.rfind(":")
    tag = ""
    if last_colon > name.rfind("/"):
        name, tag = name[:last_colon], name[last_colon + 1:]
    for rule in images:
        unknown = set(rule) - {"name", "newName", "newTag", "digest"}
        if unknown:
            raise KustomizeError(f"images fields not supported: {sorted(unknown)}")
        if rule["name"] != name:
            continue
        name = rule.get("newName", name)
        tag = str(rule.get("newTag", tag))
        digest = rule.get("digest", digest)
        break
    container["image"] = name + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")


def pod_spec(obj: dict) -> dict | None:
    """The pod spec of a workload (Deployment, Job, ...), or None."""
    if obj.get("kind") in POD_TEMPLATE_KINDS:
        return obj.get("spec", {}).get("template", {}).get("spec")
    return None


def render_dir(root: str, top: bool = True) -> list[dict]:
    """Renders the kustomization in directory `root` into a list of objects."""
    path = os.path.join(root, "kustomization.yaml")
    try:
        with open(path, encoding="utf-8") as handle:
            kustomization = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as error:
        raise KustomizeError(f"{path}: {error}") from error
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{path}: fields not supported by this renderer: {sorted(unknown)}")
    objects: list[dict] = []
    for resource in kustomization.get("resources", []):
        full = os.path.normpath(os.path.join(root, resource))
        loaded = render_dir(full, top=False) if os.path.isdir(full) else _load_yaml_docs(full)
        for obj in loaded:
            if any(_key(obj) == _key(other) for other in objects):
                raise KustomizeError(f"{path}: duplicate resource {_key(obj)}")
            objects.append(obj)
    for generator_field, kind in (("configMapGenerator", "ConfigMap"), ("secretGenerator", "Secret")):
        for spec in kustomization.get(generator_field, []):
            generated = _generate(root, spec, kind)
            behavior = spec.get("behavior", "create")
            existing = next((o for o in objects if _key(o) == _key(generated)), None)
            if behavior == "create":
                if existing is not None:
                    raise KustomizeError(f"{path}: {kind} {spec['name']} already exists (use behavior: merge)")
                objects.append(generated)
            elif behavior in ("merge", "replace"):
                if existing is None:
                    raise KustomizeError(f"{path}: {kind} {spec['name']} to {behavior} does not exist")
                if behavior == "merge":
                    existing["data"] = {**existing.get("data", {}), **generated["data"]}
                else:
                    existing["data"] = generated["data"]
            else:
                raise KustomizeError(f"{path}: unknown generator behavior {behavior}")
    for patch in kustomization.get("patches", []):
        unknown = set(patch) - {"path", "patch", "target"}
        if unknown:
            raise KustomizeError(f"{path}: patch fields not supported: {sorted(unknown)}")
        if "path" in patch:
            patch_docs = _load_yaml_docs(os.path.join(root, patch["path"]))
            text_ops = None
        else:
            loaded = yaml.safe_load(patch["patch"])
            text_ops = loaded if isinstance(loaded, list) else None
            patch_docs = [] if text_ops is not None else [loaded]
        if text_ops is not None:
            if "target" not in patch:
                raise KustomizeError(f"{path}: a JSON 6902 patch needs a target")
            hits = [i for i, o in enumerate(objects) if _matches(o, patch["target"])]
            if not hits:
                raise KustomizeError(f"{path}: patch target {patch['target']} matches nothing")
            for i in hits:
                objects[i] = json6902(objects[i], text_ops)
            continue
        for doc in patch_docs:
            hits = [i for i, o in enumerate(objects)
                    if (_matches(o, patch["target"]) if "target" in patch else _key(o) == _key(doc))]
            if not hits:
                raise KustomizeError(f"{path}: strategic merge patch for {_key(doc)} matches nothing")
            for i in hits:
                objects[i] = strategic_merge(objects[i], doc)
    for obj in objects:
        for container in _all_containers(obj):
            _set_image(container, kustomization.get("images", []))
    namespace = kustomization.get("namespace")
    for obj in objects:
        if namespace and obj["kind"] not in CLUSTER_SCOPED:
            obj["metadata"]["namespace"] = namespace
    for label_spec in kustomization.get("labels", []):
        unknown = set(label_spec) - {"pairs", "includeSelectors", "includeTemplates"}
        if unknown:
            raise KustomizeError(f"{path}: labels fields not supported: {sorted(unknown)}")
        if label_spec.get("includeSelectors"):
            raise KustomizeError(f"{path}: labels.includeSelectors is not supported (selectors are immutable)")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(label_spec["pairs"])
            template = obj.get("spec", {}).get("template") if obj["kind"] in POD_TEMPLATE_KINDS else None
            if template is not None and label_spec.get("includeTemplates"):
                template.setdefault("metadata", {}).setdefault("labels", {}).update(label_spec["pairs"])
    if top:
        _suffix_generated_names(objects)
    return objects


def _all_containers(obj: dict) -> list[dict]:
    spec = pod_spec(obj)
    if spec is None:
        return []
    return list(spec.get("initContainers", [])) + list(spec.get("containers", []))


def _suffix_generated_names(objects: list[dict]) -> None:
    renames: dict[tuple[str, str], str] = {}
    for obj in objects:
        annotations = obj["metadata"].get("annotations", {})
        if annotations.pop("tfesi.io/generated", None) is None:
            continue
        if not annotations:
            del obj["metadata"]["annotations"]
        digest = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:10]
        new_name = f"{obj['metadata']['name']}-{digest}"
        renames[(obj["kind"], obj["metadata"]["name"])] = new_name
        obj["metadata"]["name"] = new_name
    for obj in objects:
        spec = pod_spec(obj)
        if spec is None:
            continue
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                volume["configMap"]["name"] = renames.get(("ConfigMap", volume["configMap"]["name"]),
                                                          volume["configMap"]["name"])
            if "secret" in volume:
                volume["secret"]["secretName"] = renames.get(("Secret", volume["secret"]["secretName"]),
                                                             volume["secret"]["secretName"])
        for container in _all_containers(obj):
            for source in container.get("envFrom", []):
                for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if field in source:
                        source[field]["name"] = renames.get((kind, source[field]["name"]), source[field]["name"])
            for env in container.get("env", []):
                value_from = env.get("valueFrom", {})
                for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if field in value_from:
                        ref = value_from[field]
                        ref["name"] = renames.get((kind, ref["name"]), ref["name"])
