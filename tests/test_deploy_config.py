"""The deployment files agree with config.py: docker-compose.yml (and its Mailpit override),
the Kubernetes example in deploy/k8s/ and .env.example set only real settings (plus the few
variables named below that other programs read), no secret has a default, images are pinned,
and the production path mails over SMTP with STARTTLS. tests/e2e/test_stack_nginx.py runs
deploy/nginx/authserver.conf for real."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from authserver.config import NAMES, load

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
MAILPIT = ROOT / "docker-compose.mailpit.yml"
K8S = sorted((ROOT / "deploy" / "k8s").glob("*.yaml"))

#: Variables that are not settings of config.py but are read by something else in the image.
NOT_SETTINGS = {
    "FLASK_APP",                 # the flask CLI: which app `flask db upgrade` etc. load
    "FORWARDED_ALLOW_IPS",       # gunicorn (gunicorn.conf.py): who may set X-Forwarded-Proto
    "WEB_CONCURRENCY",           # gunicorn (gunicorn.conf.py): the worker count
    "PROMETHEUS_MULTIPROC_DIR",  # prometheus-client's multiprocess mode under gunicorn
}
#: Read by docker-compose.yml itself (interpolation), never by the app.
COMPOSE_ONLY = {"MYSQL_PASSWORD", "HTTP_PORT",
                # the galera profile (issue 15)
                "DATABASE_HOST", "GALERA_ROOT_PASSWORD", "CLUSTERCHECK_PASSWORD"}
#: Settings being added to config.py by the other issue 13 branches (webhooks: WEBHOOK_URL,
#: WEBHOOK_SECRET; metrics: METRICS_TOKEN, LOG_FORMAT; ops: SECRET_KEY_FALLBACKS,
#: CORS_ALLOWED_ORIGINS). Drop this set once they are merged: then they are in NAMES.
KNOWN = NAMES | NOT_SETTINGS
#: The app services of docker-compose.yml: everything built from the repository's image.
APP_SERVICES = {"migrate", "authserver-1", "authserver-2", "webhooks", "prune"}
#: Secrets that must never have a default in the compose file.
SECRETS = {"SECRET_KEY", "MYSQL_PASSWORD"}


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


def _environment(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # ["NAME=value", ...]
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def test_compose_sets_only_real_settings() -> None:
    services = _load(COMPOSE)["services"]
    apps = {name for name, svc in services.items() if "build" in svc}
    assert apps == APP_SERVICES
    for name in APP_SERVICES:
        assert services[name]["env_file"] == ".env", name  # every setting, through .env
        unknown = set(_environment(services[name])) - KNOWN
        assert not unknown, f"{name} sets {unknown}, which config.py does not read"
    for name, svc in _load(MAILPIT)["services"].items():
        if name in APP_SERVICES:
            unknown = set(_environment(svc)) - KNOWN
            assert not unknown, f"{MAILPIT.name}: {name} sets {unknown}"


def test_compose_secrets_have_no_default() -> None:
    for path in (COMPOSE, MAILPIT):
        text = path.read_text()
        for match in re.finditer(r"\$\{(\w+)([^}]*)\}", text):
            if match.group(1) in SECRETS:
                assert match.group(2).startswith(":?"), f"{path.name}: {match.group(0)}"
    services = _load(COMPOSE)["services"]
    for name in APP_SERVICES:
        env = _environment(services[name])
        assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), name
        assert "${MYSQL_PASSWORD:?" in env["DATABASE_URL"], name
    assert services["mysql"]["environment"]["MYSQL_PASSWORD"].startswith("${MYSQL_PASSWORD:?")


def test_compose_shape() -> None:
    services = _load(COMPOSE)["services"]
    for name, svc in services.items():
        image = svc["image"]
        if name in APP_SERVICES:
            assert image == "authserver:local"
        else:  # pinned to a release, never a moving tag
            assert re.search(r":v?\d+\.\d+\.\d+", image), f"{name}: {image} is not pinned"
    for name in ("authserver-1", "authserver-2"):
        svc = services[name]
        assert _environment(svc)["PROXY_FIX_HOPS"] == "1"
        assert svc["command"][:3] == ["gunicorn", "-c", "gunicorn.conf.py"]
        assert "/readyz" in " ".join(svc["healthcheck"]["test"])
        assert svc["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
    assert services["migrate"]["command"] == ["flask", "db", "upgrade"]
    assert services["webhooks"]["command"] == ["flask", "webhooks", "run"]
    assert "flask prune" in " ".join(services["prune"]["command"])
    nginx = services["nginx"]
    assert "./deploy/nginx/authserver.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert set(nginx["depends_on"]) == {"authserver-1", "authserver-2"}
    # Production mail: SMTP, STARTTLS unless .env says otherwise; Mailpit only in the override.
    for name in APP_SERVICES:
        env = _environment(services[name])
        assert env["EMAIL_BACKEND"] == "smtp"
        assert env["SMTP_STARTTLS"] == "${SMTP_STARTTLS:-true}"
    assert "mailpit" not in services
    override = _load(MAILPIT)["services"]
    assert "mailpit" in override
    assert override["mailpit"]["ports"] == ["127.0.0.1:8025:8025"]  # codes: this host only
    assert _environment(override["authserver-1"])["SMTP_HOST"] == "mailpit"


def _k8s_documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in K8S:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                documents.append((path.name, doc))
    return documents


def _pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    if doc["kind"] in {"Deployment", "Job"}:
        return dict(doc["spec"]["template"]["spec"])
    if doc["kind"] == "CronJob":
        return dict(doc["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return None


def test_k8s_sets_only_real_settings() -> None:
    documents = _k8s_documents()
    assert {doc["kind"] for _, doc in documents} >= {"ConfigMap", "Deployment", "Service",
                                                    "Job", "CronJob"}
    for name, doc in documents:
        if doc["kind"] == "ConfigMap":
            unknown = set(doc["data"]) - KNOWN
            assert not unknown, f"{name}: ConfigMap sets {unknown}"
            # Secrets come from the Secret, never from a ConfigMap in the repository.
            assert not set(doc["data"]) & {"SECRET_KEY", "DATABASE_URL", "SMTP_PASSWORD",
                                           "TWILIO_AUTH_TOKEN", "WEBHOOK_SECRET",
                                           "METRICS_TOKEN"}
        spec = _pod_spec(doc)
        if spec is None:
            continue
        for container in spec["containers"]:
            names = {item["name"] for item in container.get("env", [])}
            unknown = names - KNOWN
            assert not unknown, f"{name}: {container['name']} sets {unknown}"
            refs = {item["name"]: item["valueFrom"]["secretKeyRef"]
                    for item in container.get("env", []) if "valueFrom" in item}
            assert refs["SECRET_KEY"] == {"name": "authserver", "key": "SECRET_KEY"}
            assert refs["DATABASE_URL"] == {"name": "authserver", "key": "DATABASE_URL"}
            assert all("value" not in item for item in container["env"]
                       if item["name"] in refs)
            assert container["envFrom"] == [{"configMapRef": {"name": "authserver"}}]
            assert container["securityContext"]["runAsNonRoot"] is True


def test_k8s_shape() -> None:
    by_name = {doc["metadata"]["name"]: doc for _, doc in _k8s_documents()
               if doc["kind"] in {"Job", "CronJob"}}
    web = next(doc for _, doc in _k8s_documents()
               if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "authserver")
    assert web["spec"]["replicas"] == 2
    container = web["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["gunicorn", "-c", "gunicorn.conf.py"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    config = next(doc for _, doc in _k8s_documents() if doc["kind"] == "ConfigMap")
    assert config["data"]["EMAIL_BACKEND"] == "smtp"
    assert config["data"]["SMTP_STARTTLS"] == "true"
    assert config["data"]["PROXY_FIX_HOPS"] == "1"
    migrate = by_name["authserver-migrate"]
    assert migrate["kind"] == "Job"
    spec = _pod_spec(migrate)
    assert spec and spec["containers"][0]["command"] == ["flask", "db", "upgrade"]
    prune = by_name["authserver-prune"]
    assert prune["kind"] == "CronJob"
    spec = _pod_spec(prune)
    assert spec and spec["containers"][0]["command"] == ["flask", "prune"]


def _env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), line
            values[name] = value
    return values


def test_env_example_names_only_real_settings() -> None:
    values = _env_example()
    unknown = set(values) - NAMES - COMPOSE_ONLY
    assert not unknown, f".env.example names {unknown}, which config.py does not read"
    # Everything compose interpolates is there to fill in; secrets are empty, never examples.
    interpolated = set(re.findall(r"\$\{(\w+)", COMPOSE.read_text()))
    assert interpolated <= set(values)
    for name in SECRETS | {"SMTP_PASSWORD", "TWILIO_AUTH_TOKEN", "WEBHOOK_SECRET"}:
        assert values[name] == "", name
    assert values["SMTP_STARTTLS"] == "true"


@pytest.mark.parametrize("entry", [".venv", "instance", ".env", ".git", "tests"])
def test_dockerignore_keeps_secrets_and_clutter_out_of_the_build(entry: str) -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert entry in lines


def test_example_values_are_valid_settings(tmp_path: Path) -> None:
    # .env.example (secrets filled in) and the k8s ConfigMap parse as the app parses them.
    values = {**_env_example(), "SECRET_KEY": "example-secret-key-0123456789abcdef"}
    settings = load(None, str(tmp_path), environ=values)
    assert settings.smtp_starttls is True and settings.public_base_url == "http://localhost:8000"
    config = next(doc for _, doc in _k8s_documents() if doc["kind"] == "ConfigMap")
    settings = load(None, str(tmp_path), environ={**config["data"], "SECRET_KEY": "x" * 32})
    assert settings.email_backend == "smtp" and settings.proxy_fix_hops == 1
