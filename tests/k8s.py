"""deploy/k8s as Kubernetes would get it, and checked against Kubernetes' JSON schemas.

:func:`render` builds a kustomization the way ``kubectl kustomize`` does, for the
fields deploy/k8s uses (``resources``, ``configMapGenerator`` without name suffixes,
``images``); any other field is refused rather than ignored. :func:`problems` checks
every object against the schemas of each Kubernetes version of
:data:`KUBERNETES_VERSIONS`, strictly (an unknown field is an error), with
kubernetes-validate, which ships the schemas: no cluster and no network.

``make k8s-check`` (part of ``make lint``) runs it::

    python -m tests.k8s deploy/k8s
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

# The oldest Kubernetes the manifests are meant for, and the newest the installed
# kubernetes-validate ships (pinned in pyproject.toml).
KUBERNETES_VERSIONS = ("1.30", "1.37")

KUSTOMIZATION = "kustomization.yaml"
# Files of deploy/k8s that are manifests but not applied by the kustomization.
EXAMPLES = ("secret.example.yaml",)
SUPPORTED = {"apiVersion", "kind", "resources", "configMapGenerator", "images"}


class KustomizeError(Exception):
    """A kustomization this renderer does not reproduce faithfully, or a broken one."""


def load_yaml(path: Path) -> list[dict[str, Any]]:
    """The documents of a YAML file (empty ones left out)."""
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization(directory: Path) -> dict[str, Any]:
    (doc,) = load_yaml(directory / KUSTOMIZATION)
    unsupported = sorted(set(doc) - SUPPORTED)
    if unsupported:
        raise KustomizeError(f"{directory / KUSTOMIZATION}: not rendered here: {unsupported}")
    return doc


def render(directory: Path) -> list[dict[str, Any]]:
    """The objects ``kubectl kustomize DIRECTORY`` gives (in kustomize's order: the
    generated ConfigMaps after the resources of their kustomization)."""
    doc = kustomization(directory)
    objects: list[dict[str, Any]] = []
    for entry in doc.get("resources", []):
        path = (directory / entry).resolve()
        objects += render(path) if path.is_dir() else load_yaml(path)
    objects += [config_map(directory, spec) for spec in doc.get("configMapGenerator", [])]
    for image in doc.get("images", []):
        set_image(objects, image)
    return objects


def config_map(directory: Path, spec: dict[str, Any]) -> dict[str, Any]:
    options = spec.get("options", {})
    if options.get("disableNameSuffixHash") is not True:
        raise KustomizeError(f"{spec['name']}: a name suffix hash is not rendered here")
    if set(spec) - {"name", "files", "options"} or set(options) - {
        "disableNameSuffixHash",
        "labels",
    }:
        raise KustomizeError(f"{spec['name']}: only files, and options labels, are rendered")
    data: dict[str, str] = {}
    for item in spec.get("files", []):
        key, _, name = item.rpartition("=")
        path = (directory / name).resolve()
        if not path.is_relative_to(directory.resolve()):
            raise KustomizeError(f"{item}: kustomize reads no file outside {directory}")
        data[key or path.name] = path.read_text()
    metadata: dict[str, Any] = {"name": spec["name"]}
    if "labels" in options:
        metadata["labels"] = options["labels"]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data}


def set_image(objects: Iterable[dict[str, Any]], image: dict[str, Any]) -> None:
    """kustomize's ``images``: the containers whose image is ``name`` (with any tag)."""
    for obj in objects:
        template = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in template.get("containers", []) + template.get("initContainers", []):
            name, _, tag = container["image"].partition(":")
            if name != image["name"]:
                continue
            name = image.get("newName", name)
            if "digest" in image:
                container["image"] = f"{name}@{image['digest']}"
            else:
                container["image"] = f"{name}:{image.get('newTag', tag or 'latest')}"


def manifests(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every object deploy/k8s holds, named by where it comes from: the rendered
    kustomization and the examples beside it."""
    found = [(f"{directory}/{KUSTOMIZATION}", obj) for obj in render(directory)]
    for name in EXAMPLES:
        found += [(f"{directory}/{name}", obj) for obj in load_yaml(directory / name)]
    return found


def problems(
    objects: Sequence[tuple[str, dict[str, Any]]], versions: Sequence[str] = KUBERNETES_VERSIONS
) -> list[str]:
    """What is wrong with each object, against each version's schema (strict); an
    object of a kind with no schema is a problem too."""
    found: list[str] = []
    for where, obj in objects:
        what = f"{where}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(part) for part in exc.path)
                found.append(f"{what}: Kubernetes {version}: {path}: {exc.message}")
            except kubernetes_validate.SchemaNotFoundError as exc:
                found.append(f"{what}: {exc.message}")
    return found


def main(argv: Sequence[str]) -> int:
    directory = Path(argv[0] if argv else "deploy/k8s")
    try:
        objects = manifests(directory)
    except (KustomizeError, OSError, yaml.YAMLError) as exc:
        print(f"k8s-check: {exc}", file=sys.stderr)
        return 1
    wrong = problems(objects)
    for problem in wrong:
        print(problem, file=sys.stderr)
    versions = " and ".join(KUBERNETES_VERSIONS)
    print(f"k8s-check: {len(objects)} objects of {directory}, {len(wrong)} problems "
          f"(Kubernetes {versions}, strict)")  # fmt: skip
    return 1 if wrong else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
