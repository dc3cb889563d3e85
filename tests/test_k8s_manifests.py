"""deploy/k8s: every object valid for Kubernetes, and saying what the service needs:
probes on the right endpoints and port, non-root and read-only, every graph file in
the ConfigMap it reloads from, the secrets in the Secret and only there."""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.runtime.settings import Settings
from tests.k8s import (
    KUSTOMIZATION,
    KustomizeError,
    load_yaml,
    manifests,
    problems,
    render,
)
from tests.paths import ROOT, SHIPPED_GRAPHS

K8S = ROOT / "deploy" / "k8s"
OBJECTS = manifests(K8S)
README = (ROOT / "README.md").read_text()


def one(kind: str, name: str) -> dict[str, Any]:
    (found,) = [o for _, o in OBJECTS if o["kind"] == kind and o["metadata"]["name"] == name]
    return found


DEPLOYMENT = one("Deployment", "ivr")
POD = DEPLOYMENT["spec"]["template"]["spec"]
(CONTAINER,) = POD["containers"]
SETTINGS = one("ConfigMap", "ivr-settings")["data"]
SECRET = one("Secret", "ivr-secrets")


def settings_read() -> dict[str, bool]:
    """Every variable service/runtime/settings.py reads, and whether it is required."""
    source = (ROOT / "service" / "runtime" / "settings.py").read_text()
    found = re.findall(r'reader\.(\w+)\(\s*"([A-Z_]+)"([^)]*)\)', source)
    assert found
    return {name: how == "required" or "required=True" in rest for how, name, rest in found}


def test_every_manifest_validates_against_the_kubernetes_schemas() -> None:
    kinds = sorted({o["kind"] for _, o in OBJECTS})
    assert kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
                     "PodDisruptionBudget", "Secret", "Service", "StatefulSet"]  # fmt: skip
    assert problems(OBJECTS) == []


def test_every_yaml_file_of_deploy_k8s_is_checked() -> None:
    applied = load_yaml(K8S / KUSTOMIZATION)[0]["resources"]
    checked = {*applied, KUSTOMIZATION, "secret.example.yaml"}
    assert sorted(p.name for p in K8S.glob("*.yaml")) == sorted(
        name for name in checked if (K8S / name).is_file()
    )


def test_the_check_finds_a_misspelt_field_a_wrong_type_and_an_unknown_kind() -> None:
    misspelt = copy.deepcopy(DEPLOYMENT)
    misspelt["spec"]["replica"] = misspelt["spec"].pop("replicas")
    wrong_type = copy.deepcopy(DEPLOYMENT)
    wrong_type["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "80"
    unknown = {"apiVersion": "v1", "kind": "Deploymnt", "metadata": {"name": "x"}}
    found = problems([("a", misspelt), ("b", wrong_type), ("c", unknown)], ["1.30"])
    assert len(found) == 3
    assert "'replica' was unexpected" in found[0]
    assert "containerPort" in found[1]
    assert "Deploymnt" in found[2]


def test_a_kustomization_field_the_renderer_does_not_know_is_refused(tmp_path: Path) -> None:
    (tmp_path / KUSTOMIZATION).write_text(yaml.safe_dump({"resources": [], "namespace": "x"}))
    with pytest.raises(KustomizeError, match="namespace"):  # never silently ignored
        render(tmp_path)


def test_probes_hit_healthz_and_readyz_on_the_port_the_service_listens_on() -> None:
    (port,) = CONTAINER["ports"]
    args = CONTAINER["args"]
    assert args[0] == "serve"
    assert int(args[args.index("--port") + 1]) == port["containerPort"] == 8080
    assert args[args.index("--host") + 1] == "0.0.0.0"  # noqa: S104 - in its pod
    probes = {kind: CONTAINER[f"{kind}Probe"]["httpGet"] for kind in ("liveness", "readiness")}
    assert probes["liveness"]["path"] == "/healthz"
    assert probes["readiness"]["path"] == "/readyz"
    assert CONTAINER["startupProbe"]["httpGet"]["path"] == "/healthz"
    for probe in [*probes.values(), CONTAINER["startupProbe"]["httpGet"]]:
        assert probe["port"] in (port["name"], port["containerPort"])
    annotations = DEPLOYMENT["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert annotations["prometheus.io/path"] == "/metrics"
    service = one("Service", "ivr")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert service["spec"]["selector"] == DEPLOYMENT["spec"]["template"]["metadata"]["labels"]


def test_it_runs_as_the_images_non_root_user_on_a_read_only_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    (user,) = re.findall(r"^USER (\d+)(?::\d+)?$", dockerfile, flags=re.M)
    assert POD["securityContext"]["runAsNonRoot"] is True
    assert POD["securityContext"]["runAsUser"] == int(user) == 10001
    assert POD["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert POD["automountServiceAccountToken"] is False
    security = CONTAINER["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    # The one writable place: /tmp, an emptyDir.
    mounts = {m["mountPath"]: m["name"] for m in CONTAINER["volumeMounts"]}
    volumes = {v["name"]: v for v in POD["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert set(CONTAINER["resources"]["requests"]) == {"cpu", "memory"}
    assert set(CONTAINER["resources"]["limits"]) == {"cpu", "memory"}


def test_a_pod_stops_within_its_grace_period() -> None:
    """preStop's pause, then the requests in flight: a webhook waits on Bird at most
    BIRD_TIMEOUT_S per request."""
    pause = CONTAINER["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0] == "sleep"
    bird_timeout = float(SETTINGS.get("BIRD_TIMEOUT_S", Settings.bird_timeout_s))
    assert POD["terminationGracePeriodSeconds"] >= int(pause[1]) + 2 * bird_timeout


def test_the_graphs_configmap_holds_every_file_of_ivr_graphs() -> None:
    (generator,) = load_yaml(SHIPPED_GRAPHS / KUSTOMIZATION)[0]["configMapGenerator"]
    files = sorted(p.name for p in SHIPPED_GRAPHS.iterdir() if p.name != KUSTOMIZATION)
    assert sorted(generator["files"]) == files
    # Updated in place (no name suffix): the kubelet updates the mounted volume.
    assert generator["options"]["disableNameSuffixHash"] is True
    graphs = one("ConfigMap", "ivr-graphs")
    assert graphs["data"] == {name: (SHIPPED_GRAPHS / name).read_text() for name in files}


def test_the_graphs_are_mounted_as_ivr_graphs_dir_and_watched() -> None:
    volumes = {v["name"]: v for v in POD["volumes"]}
    (mount,) = [m for m in CONTAINER["volumeMounts"] if m["mountPath"] == "/etc/ivr/graphs"]
    assert volumes[mount["name"]]["configMap"]["name"] == "ivr-graphs"
    assert "subPath" not in mount  # a subPath mount is never updated
    assert SETTINGS["IVR_GRAPHS_DIR"] == mount["mountPath"]
    assert int(SETTINGS["IVR_GRAPHS_WATCH_S"]) > 0
    taken = Settings.from_env({**SETTINGS, **dict.fromkeys(SECRET["stringData"], "x" * 16)})
    assert taken.ivr_graphs_watch_s == int(SETTINGS["IVR_GRAPHS_WATCH_S"])


def test_the_secret_holds_the_settings_readme_calls_secrets_and_only_it_does() -> None:
    (sentence,) = re.findall(r"The secrets among the settings,(.*?), are never logged", README,
                             flags=re.S)  # fmt: skip
    secrets = sorted(re.findall(r"`([A-Z_]+)`", sentence))
    # The settings that Settings keeps out of its repr.
    hidden = sorted(f.name.upper() for f in dataclasses.fields(Settings) if not f.repr)
    assert secrets == hidden == sorted(SECRET["stringData"])
    assert all(value == "" for value in SECRET["stringData"].values())  # an example only
    assert not set(secrets) & set(SETTINGS)
    # The pods take both, the Secret last (it wins for a key in both).
    assert CONTAINER["envFrom"] == [
        {"configMapRef": {"name": "ivr-settings"}},
        {"secretRef": {"name": SECRET["metadata"]["name"]}},
    ]
    # Between them, every required setting, and nothing that is not a setting.
    read = settings_read()
    given = set(SETTINGS) | set(SECRET["stringData"])
    assert given <= set(read)
    assert {name for name, required in read.items() if required} <= given


def test_scaling_and_disruptions_keep_two_replicas() -> None:
    hpa = one("HorizontalPodAutoscaler", "ivr")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "ivr"}
    assert DEPLOYMENT["spec"]["replicas"] >= 2
    assert hpa["minReplicas"] >= 2
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    pdb = one("PodDisruptionBudget", "ivr")["spec"]
    labels = DEPLOYMENT["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"] == labels
    assert pdb["minAvailable"] < hpa["minReplicas"]


def test_the_network_policy_lets_in_8080_only_and_out_dns_redis_https() -> None:
    policy = one("NetworkPolicy", "ivr")["spec"]
    assert policy["podSelector"]["matchLabels"] == DEPLOYMENT["spec"]["selector"]["matchLabels"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    ingress = [(p["protocol"], p["port"]) for rule in policy["ingress"] for p in rule["ports"]]
    assert ingress == [("TCP", 8080)]
    egress = {(p["protocol"], p["port"]) for rule in policy["egress"] for p in rule["ports"]}
    assert egress == {("UDP", 53), ("TCP", 53), ("TCP", 6379), ("TCP", 443)}


def test_the_redis_for_trying_it_keeps_an_append_only_file_on_a_volume() -> None:
    redis = one("StatefulSet", "ivr-redis")["spec"]
    (container,) = redis["template"]["spec"]["containers"]
    args = container["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    (claim,) = redis["volumeClaimTemplates"]
    (mount,) = container["volumeMounts"]
    assert mount["name"] == claim["metadata"]["name"]
    assert args[args.index("--dir") + 1] == mount["mountPath"]
    service = one("Service", "ivr-redis")
    assert SETTINGS["REDIS_URL"] == f"redis://ivr-redis:{service['spec']['ports'][0]['port']}/0"
    assert service["spec"]["selector"] == redis["template"]["metadata"]["labels"]
