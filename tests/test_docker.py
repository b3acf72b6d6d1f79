"""docker/: pinned base images, non-root users, health checks, a GPU reservation for the
inference worker, a proxy that caps uploads. `make test` also runs `docker-compose config`."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

DOCKER = Path(__file__).resolve().parent.parent / "docker"
PINNED = re.compile(r"^[\w./-]+:\d[\w.-]*$")  # an exact version tag, never "latest"


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


@pytest.mark.parametrize("name", ["web.Dockerfile", "worker.Dockerfile"])
def test_images_are_pinned_non_root_and_health_checked(name):
    text = (DOCKER / name).read_text()
    base = re.search(r"^FROM (\S+)", text, re.M).group(1)
    assert PINNED.match(base), base
    assert re.search(r"^USER xrayweb$", text, re.M) and "HEALTHCHECK" in text


def test_compose_services_are_pinned_and_health_checked():
    services = _compose()["services"]
    assert {"postgres", "redis", "web", "worker-inference", "beat", "proxy"} <= set(services)
    for name, service in services.items():
        if "image" in service and not service["image"].startswith("xrayweb-"):
            assert PINNED.match(service["image"]), (name, service["image"])
        if service.get("restart") != "no":  # one-shot jobs excepted
            assert "healthcheck" in service, name
    gpu = services["worker-inference"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert "unprivileged" in services["proxy"]["image"]


def test_the_dicom_listener_runs_from_the_web_image_published_on_loopback_unless_told():
    listener = _compose()["services"]["dicom-listener"]
    assert listener["image"] == "xrayweb-web:local"  # the web image: no torch
    assert listener["command"] == ["python", "manage.py", "dicom_listener"]
    assert listener["environment"]["DICOM_HOST"] == "0.0.0.0"  # inside its container
    # An allow-list of calling AE titles is required, not optional.
    assert ":?" in listener["environment"]["DICOM_ALLOWED_CALLING_AETS"]
    # Issue 27: it was published on every interface of the host, with no TLS.
    assert listener["ports"] == ["${DICOM_BIND:-127.0.0.1}:${DICOM_PORT:-11112}:11112"]
    assert {"DICOM_TLS_CERT", "DICOM_TLS_KEY", "DICOM_TLS_CA"} <= set(listener["environment"])


def test_the_proxy_caps_upload_size():
    conf = (DOCKER / "nginx.conf").read_text()
    size = re.search(r"client_max_body_size (\d+)m;", conf)
    assert size and 50 <= int(size.group(1)) <= 100


def test_compose_file_validates_with_docker_compose():
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail("docker-compose not installed; `make test` installs Debian's package")
    result = subprocess.run(
        [
            compose,
            "-f",
            str(DOCKER / "compose.yaml"),
            "--env-file",
            str(DOCKER / "env.example"),
            "config",
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_the_app_trusts_forwarded_for_from_its_proxy_only():
    compose = _compose()
    proxy = compose["services"]["proxy"]["networks"]["default"]["ipv4_address"]
    for name in ("web", "worker-default", "worker-inference", "dicom-listener"):
        env = compose["services"][name]["environment"]
        assert env["TRUSTED_PROXIES"] == proxy, name
        assert "AUDIT_CHAIN_KEY" in env, name
    conf = (DOCKER / "nginx.conf").read_text()
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in conf


def test_the_proxy_terminates_tls_and_never_passes_a_clients_forwarded_proto():
    """Issue 27: nginx passed the client's own X-Forwarded-Proto (which Django trusts with
    HTTPS=1), and published plain HTTP on 8080."""
    conf = (DOCKER / "nginx.conf").read_text()
    assert "$http_x_forwarded_proto" not in conf
    assert conf.count("X-Forwarded-Proto $scheme") == 2
    assert "listen 8443 ssl;" in conf and "return 301 https://" in conf
    proxy = _compose()["services"]["proxy"]
    assert proxy["ports"] == ["${HTTPS_PORT:-443}:8443"]
    assert any(v.endswith(":/etc/nginx/tls:ro") for v in proxy["volumes"])


def test_the_app_connects_as_a_role_that_owns_nothing_and_only_migrate_as_the_owner():
    """Issue 27: every service connected as the PostgreSQL superuser. The roles themselves
    are tested against a real PostgreSQL in tests/xrayweb/test_db_roles.py."""
    services = _compose()["services"]
    urls = {
        name: service["environment"]["DATABASE_URL"]
        for name, service in services.items()
        if isinstance(service.get("environment"), dict) and "DATABASE_URL" in service["environment"]
    }
    assert urls["migrate"].startswith("postgres://xrayweb_owner:")
    others = {name: url for name, url in urls.items() if name != "migrate"}
    assert {"web", "worker-inference", "worker-default", "beat", "dicom-listener"} <= set(others)
    assert all(url.startswith("postgres://xrayweb_app:") for url in others.values()), others
    assert "db_grants --role xrayweb_app" in services["migrate"]["command"][-1]
    postgres = services["postgres"]
    assert postgres["environment"]["POSTGRES_USER"] == "postgres"
    init = DOCKER / "postgres" / "10-roles.sh"
    assert (
        f"./postgres/{init.name}:/docker-entrypoint-initdb.d/{init.name}:ro"
        in (postgres["volumes"])
    )
    script = init.read_text()
    assert "CREATE DATABASE xrayweb OWNER xrayweb_owner" in script
    assert "SUPERUSER" not in script.split("<<'SQL'")[1]
