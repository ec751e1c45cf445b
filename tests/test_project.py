"""Project-level checks: Django's checks, migrations, settings, deployment files."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.django_db
def test_django_system_checks_pass():
    call_command("check", "--fail-level", "WARNING")


@pytest.mark.django_db
def test_models_and_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)


def _settings_in_subprocess(env: dict) -> subprocess.CompletedProcess:
    clean = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "DEBUG")}
    clean.update(env, DJANGO_SETTINGS_MODULE="portwatch.settings")
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        ],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
    )


def test_secret_key_is_required_when_debug_is_off(tmp_path):
    result = _settings_in_subprocess({"DEBUG": "0", "PORTWATCH_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_local_secret_key_is_generated_once_under_var(tmp_path):
    first = _settings_in_subprocess({"PORTWATCH_VAR_DIR": str(tmp_path)})
    assert first.returncode == 0, first.stderr
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    _settings_in_subprocess({"PORTWATCH_VAR_DIR": str(tmp_path)})
    assert (tmp_path / "secret_key").read_text() == key


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"NMAP_HOST_TIMEOUT": "soon"}, "NMAP_HOST_TIMEOUT='soon' is not an integer"),
        ({"NMAP_HOST_TIMEOUT": "4000", "SCAN_CHUNK_SOFT_TIME_LIMIT": "3600"}, "Time limits must satisfy"),
    ],
)
def test_bad_settings_stop_the_process_with_the_variable_named(tmp_path, env, message):
    result = _settings_in_subprocess({"PORTWATCH_VAR_DIR": str(tmp_path), **env})
    assert result.returncode != 0
    assert message in result.stderr


def _compose_command() -> list[str] | None:
    """Docker's compose plugin, or the standalone docker-compose."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _compose_config(env: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed")
    # An empty env file: a developer's own .env must not change the result.
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    compose = [*command, "--env-file", str(env_file), "-f", str(ROOT / "docker-compose.yml")]
    return subprocess.run([*compose, "config", "-q"], cwd=ROOT, env=env, capture_output=True, text=True)


def test_docker_compose_file_is_valid(tmp_path):
    result = _compose_config(dict(os.environ, SECRET_KEY="x" * 50, POSTGRES_PASSWORD="example"), tmp_path)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_secrets(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "POSTGRES_PASSWORD")}
    result = _compose_config(env, tmp_path)
    assert result.returncode != 0
    assert "set SECRET_KEY in .env" in result.stderr or "set POSTGRES_PASSWORD in .env" in result.stderr


def test_the_suites_nmap_refuses_targets_outside_loopback(tmp_path):
    """No test can scan a real network, whatever scope rules it creates."""
    import subprocess
    import sys

    from django.conf import settings

    assert settings.NMAP_PATH.endswith("tests/nmap_guard.py")
    targets = tmp_path / "targets"
    targets.write_text("127.0.0.1\n198.18.20.0/29\n")
    result = subprocess.run(
        [sys.executable, settings.NMAP_PATH, "-sn", "-iL", str(targets)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "refusing to scan outside 127.0.0.0/8: 198.18.20.0/29" in result.stderr


@pytest.mark.sqlite
@pytest.mark.django_db
def test_the_sqlite_run_is_a_fresh_file_in_wal_mode_never_the_users_var():
    """The SQLite run (make test-sqlite) tests the embedded default as `make run` configures it."""
    from django.conf import settings
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("checks the SQLite run's own database (make test-sqlite)")
    database = Path(connection.settings_dict["NAME"])
    assert database.is_file() and database.parent == settings.VAR_DIR
    assert not database.resolve().is_relative_to(ROOT)
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        assert cursor.fetchone()[0] == "wal"
    assert settings.CELERY_BROKER_URL == "filesystem://"
