"""infra/: every Kubernetes manifest valid against the Kubernetes schemas (offline, with
kubernetes-validate), the compose file's services, health checks and start order, and every
OPENCDMO_* variable named anywhere in infra/ a real setting (the README's table)."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from opencdmo.settings import Settings

INFRA = Path(__file__).parents[2] / "infra"
K8S_VERSION = "1.33.0"
MANIFESTS = sorted((INFRA / "k8s").glob("*.yaml"))
SETTING = re.compile(r"\bOPENCDMO_[A-Z0-9_]+\b")
NOT_SETTINGS = {"OPENCDMO_IMAGE"}  # the compose file's choice of image, not the app's


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_each_kubernetes_manifest_is_valid(path: Path) -> None:
    for document in _documents(path):
        if document["kind"] == "Kustomization":
            listed = {INFRA / "k8s" / name for name in document["resources"]}
            assert all(p.is_file() for p in listed), listed
            continue
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_the_deployments_probe_read_secrets_by_reference_and_migrate_first() -> None:
    kinds: dict[tuple[str, str], dict[str, Any]] = {}
    for path in MANIFESTS:
        for d in _documents(path):
            if "metadata" in d:
                kinds[(d["kind"], d["metadata"]["name"])] = d
    web = kinds[("Deployment", "opencdmo-web")]["spec"]["template"]["spec"]["containers"][0]
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert ("HorizontalPodAutoscaler", "opencdmo-web") in kinds
    assert kinds[("Job", "opencdmo-migrate")]["spec"]["template"]["spec"]["initContainers"][0][
        "args"
    ] == ["db", "upgrade"]
    kustomized = _documents(INFRA / "k8s" / "kustomization.yaml")[0]["resources"]
    assert "migrate-job.yaml" not in kustomized  # it runs, and completes, before a rollout
    for (kind, name), d in kinds.items():
        if kind not in ("Deployment", "StatefulSet", "Job"):
            continue
        spec = d["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            for variable in container.get("env", []):
                assert "value" not in variable or "SECRET" not in variable["name"], name
                if variable["name"].endswith(("_KEY", "_PASSWORD", "_URL", "_KEY_ID")):
                    assert "secretKeyRef" in variable.get("valueFrom", {}), (name, variable)
            assert container["securityContext"]["runAsNonRoot"] is True, name


def test_the_compose_file_starts_everything_in_order_with_health_checks() -> None:
    compose = yaml.safe_load((INFRA / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    for wanted in ("web", "worker", "capture", "simulator", "postgres", "minio", "migrate"):
        assert wanted in services, wanted
    for checked in ("web", "postgres", "minio"):
        assert "healthcheck" in services[checked], checked
    assert services["web"]["command"] == ["serve"] and services["worker"]["command"] == ["worker"]
    assert services["web"]["environment"]["OPENCDMO_WORKERS"].startswith("${WEB_WORKERS")
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    started_after_migrations = ("web", "worker", "simulator")
    for name in started_after_migrations:
        assert services[name]["depends_on"]["hub-sync"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["hub-sync"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    for volume in ("postgres-data", "minio-data", "opencdmo-data"):
        assert volume in compose["volumes"]


def test_every_setting_infra_names_is_a_setting_of_the_app() -> None:
    known = {f"OPENCDMO_{f.name.upper()}" for f in fields(Settings)}
    named: dict[str, set[str]] = {}
    for path in INFRA.rglob("*"):
        if path.is_file():
            for name in SETTING.findall(path.read_text(errors="replace")):
                named.setdefault(name, set()).add(str(path.relative_to(INFRA)))
    unknown = {n: sorted(p) for n, p in named.items() if n not in known | NOT_SETTINGS}
    assert unknown == {}, f"not settings of the app (settings.py, the README's table): {unknown}"
    assert len(named) > 10
