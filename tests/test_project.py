"""Project-level checks: Django's checks, migrations, settings, deployment files."""

import os
import re
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


def test_secret_key_is_required_when_debug_is_off_on_postgresql(tmp_path):
    env = {"DEBUG": "0", "PORTWATCH_VAR_DIR": str(tmp_path), "DATABASE_URL": "postgres://portwatch@127.0.0.1/portwatch"}
    result = _settings_in_subprocess(env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_the_embedded_default_keeps_its_key_under_var_with_debug_off(tmp_path):
    """`make run` runs with DEBUG off, on SQLite: one machine, one var/, one key."""
    clean = {"DEBUG": "0", "PORTWATCH_VAR_DIR": str(tmp_path), "DATABASE_URL": ""}
    result = _settings_in_subprocess(clean)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False" and len((tmp_path / "secret_key").read_text()) >= 50


def test_local_secret_key_is_generated_once_under_var(tmp_path):
    first = _settings_in_subprocess({"PORTWATCH_VAR_DIR": str(tmp_path)})
    assert first.returncode == 0, first.stderr
    key = (tmp_path / "secret_key").read_text()
    assert len(key) >= 50
    assert oct((tmp_path / "secret_key").stat().st_mode & 0o777) == "0o600"
    _settings_in_subprocess({"PORTWATCH_VAR_DIR": str(tmp_path)})
    assert (tmp_path / "secret_key").read_text() == key


@pytest.mark.parametrize(
    ("env", "backend"),
    [
        (
            {
                "OIDC_RP_CLIENT_ID": "portwatch",
                "OIDC_RP_CLIENT_SECRET": "s",
                "OIDC_OP_AUTHORIZATION_ENDPOINT": "https://idp.example/authorize",
                "OIDC_OP_TOKEN_ENDPOINT": "https://idp.example/token",
                "OIDC_OP_USER_ENDPOINT": "https://idp.example/userinfo",
                "OIDC_OP_JWKS_ENDPOINT": "https://idp.example/jwks",
                "OIDC_VIEWER_VALUES": "staff",
            },
            "accounts.oidc.ProviderBackend",
        ),
        (
            {
                "LDAP_SERVER_URI": "ldap://127.0.0.1:9",
                "LDAP_USER_SEARCH_BASE": "ou=people,dc=t",
                "LDAP_GROUP_SEARCH_BASE": "ou=groups,dc=t",
                "LDAP_VIEWER_GROUPS": "cn=v,ou=groups,dc=t",
            },
            "accounts.directory.DirectoryBackend",
        ),
    ],
)
def test_a_process_starts_with_single_sign_on_configured_from_the_environment(tmp_path, env, backend):
    """The settings import the single sign-on modules before Django's apps are ready: they must allow it."""
    clean = {key: value for key, value in os.environ.items() if key not in ("SECRET_KEY", "DEBUG")}
    clean.update(env, PORTWATCH_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="portwatch.settings")
    code = "import django; django.setup(); from django.conf import settings; print(settings.AUTHENTICATION_BACKENDS)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert backend in result.stdout


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEBUG": "maybe"}, "DEBUG='maybe' is not a boolean"),
        ({"NMAP_HOST_TIMEOUT": "soon"}, "NMAP_HOST_TIMEOUT='soon' is not an integer"),
        ({"NMAP_HOST_TIMEOUT": "4000", "SCAN_CHUNK_SOFT_TIME_LIMIT": "3600"}, "Time limits must satisfy"),
        ({"BEHIND_TLS_PROXY": "sometimes"}, "BEHIND_TLS_PROXY='sometimes' is not a boolean"),
        ({"SECURE_HSTS_SECONDS": "-1"}, "SECURE_HSTS_SECONDS=-1 is below the minimum of 0"),
        ({"SECURE_HSTS_PRELOAD": "1", "SECURE_HSTS_SECONDS": "3600"}, "SECURE_HSTS_PRELOAD=1 needs"),
        ({"LOGIN_FAILURE_LIMIT": "0"}, "LOGIN_FAILURE_LIMIT=0 is below the minimum of 1"),
        ({"LOGIN_LOCKOUT_MINUTES": "a while"}, "LOGIN_LOCKOUT_MINUTES='a while' is not an integer"),
        ({"API_TOKEN_FAILURE_LIMIT": "many"}, "API_TOKEN_FAILURE_LIMIT='many' is not an integer"),
        ({"LOCAL_LOGIN": "0"}, "LOCAL_LOGIN=0 leaves no way to log in"),
        ({"OIDC_RP_CLIENT_ID": "portwatch"}, "set OIDC_RP_CLIENT_SECRET, OIDC_OP_AUTHORIZATION_ENDPOINT"),
        ({"LDAP_SERVER_URI": "ldap://127.0.0.1:9"}, "no directory group gives a role"),
        (
            {"LDAP_SERVER_URI": "ldap://127.0.0.1:9", "LDAP_VIEWER_GROUPS": "cn=v,dc=t", "LDAP_GROUP_TYPE": "sql"},
            "LDAP_GROUP_TYPE='sql': use one of groupOfNames",
        ),
        (
            {"LDAP_SERVER_URI": "ldap://127.0.0.1:9", "LDAP_VIEWER_GROUPS": "cn=v,dc=t", "LDAP_GROUP_SEARCH_BASE": "t"},
            "Set LDAP_USER_SEARCH_BASE (or LDAP_USER_DN_TEMPLATE)",
        ),
    ],
)
def test_bad_settings_stop_the_process_with_the_variable_named(tmp_path, env, message):
    result = _settings_in_subprocess({"PORTWATCH_VAR_DIR": str(tmp_path), **env})
    assert result.returncode != 0
    assert message in result.stderr


def _check_deploy(tmp_path, **env) -> subprocess.CompletedProcess:
    """`manage.py check --deploy` as production runs it: DEBUG off, a real key, the suite's PostgreSQL and Redis."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECRET_KEY", "DEBUG", "SECURE_", "BEHIND_TLS_PROXY", "SESSION_", "CSRF_"))
    }
    clean.update(
        DJANGO_SETTINGS_MODULE="portwatch.settings",
        PORTWATCH_VAR_DIR=str(tmp_path),
        DEBUG="0",
        # Random-looking and long, as check --deploy wants it (never used anywhere).
        SECRET_KEY="kH3x9Qw2-deploy-check-only-Zp7Lm4Rt8Vb1Nc6Yd0Fs5Gj2Hk9Ua3Ie7Ow",
        ALLOWED_HOSTS="portwatch.example.org",
        DATABASE_URL=os.environ["DATABASE_URL"],
        REDIS_URL=os.environ["REDIS_URL"],
        **env,
    )
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"SECURE_HSTS_PRELOAD": "1"},
        # As docker compose passes the variables an operator left unset.
        {"SECURE_SSL_REDIRECT": "", "SECURE_HSTS_SECONDS": "", "SECURE_HSTS_INCLUDE_SUBDOMAINS": ""},
    ],
    ids=["defaults", "preload", "compose-blanks"],
)
def test_check_deploy_passes_on_the_production_configuration(tmp_path, env):
    result = _check_deploy(tmp_path, BEHIND_TLS_PROXY="1", **env)
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("env", "warnings"),
    [
        ({}, {"security.W004", "security.W008"}),
        ({"BEHIND_TLS_PROXY": "1", "SECURE_SSL_REDIRECT": "0"}, {"security.W008"}),
        ({"BEHIND_TLS_PROXY": "1", "SECURE_HSTS_SECONDS": "0"}, {"security.W004"}),
        ({"BEHIND_TLS_PROXY": "1", "SECURE_HSTS_INCLUDE_SUBDOMAINS": "0"}, {"security.W005"}),
        ({"BEHIND_TLS_PROXY": "1", "SESSION_COOKIE_SECURE": "0"}, {"security.W012"}),
    ],
    ids=["no-tls-proxy", "no-redirect", "no-hsts", "no-subdomains", "plain-session-cookie"],
)
def test_check_deploy_names_what_the_environment_turned_off(tmp_path, env, warnings):
    result = _check_deploy(tmp_path, **env)
    assert result.returncode != 0
    assert set(re.findall(r"\((security\.W\d+)\)", result.stderr)) == warnings


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
    assert settings.CELERY_BROKER_URL == "filesystem://localhost/"


# --- `python3 manage.py ...` from a plain shell (README, pages and messages say so) ---------------------

# Where users are told to run a command, it is `python3 manage.py NAME`.
USER_FACING = [ROOT / "README.md", *ROOT.glob("templates/**/*.html"), *ROOT.glob("*/management/commands/*.py")]
USER_FACING += [ROOT / "portwatch" / "health.py", ROOT / "inventory" / "baseline.py"]


def _python_outside_the_virtualenv() -> str:
    """The interpreter the test's virtualenv was made from: a plain `python3` with none of our packages."""
    return getattr(sys, "_base_executable", None) or str(Path(sys.base_prefix) / "bin" / "python3")


def _plain_shell(tmp_path) -> dict:
    venv_bin = str(Path(sys.prefix) / "bin")
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["PATH"] = os.pathsep.join(part for part in env.get("PATH", "").split(os.pathsep) if part != venv_bin)
    env["PORTWATCH_VAR_DIR"] = str(tmp_path)
    return env


@pytest.fixture
def checkout_venv():
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in the checkout (make run and make test create it)")


def test_manage_py_run_by_a_python_outside_any_virtualenv_runs_in_the_checkouts_venv(tmp_path, checkout_venv):
    """From another directory too, as `python3 /opt/portwatch/manage.py ...` in a cron job."""
    code = "import sys; print('prefix=' + sys.prefix)"
    command = [_python_outside_the_virtualenv(), str(ROOT / "manage.py"), "shell", "-c", code]
    result = subprocess.run(command, cwd=tmp_path, env=_plain_shell(tmp_path), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    prefix = re.search(r"^prefix=(.*)$", result.stdout, re.MULTILINE).group(1)
    assert Path(prefix).resolve() == (ROOT / ".venv").resolve()


def test_every_command_the_readme_pages_and_messages_name_exists_and_is_spelled_python3(tmp_path, checkout_venv):
    named = set()
    for path in USER_FACING:
        text = path.read_text()
        assert not re.search(r"(?<![\w/.])python manage\.py", text), f"{path}: say python3 manage.py"
        named |= set(re.findall(r"python3 manage\.py (\w+)", text))
    assert {"demo", "ensure_admin", "changepassword", "scope", "api_token", "verify_audit", "run_worker"} <= named
    listed = subprocess.run(
        [_python_outside_the_virtualenv(), "manage.py", "help", "--commands"],
        cwd=ROOT,
        env=_plain_shell(tmp_path),
        capture_output=True,
        text=True,
    )
    assert listed.returncode == 0, listed.stderr
    assert named <= set(listed.stdout.split())


def test_manage_py_without_a_virtualenv_says_how_to_set_one_up(tmp_path):
    python = _python_outside_the_virtualenv()
    if subprocess.run([python, "-c", "import django"], capture_output=True).returncode == 0:
        pytest.skip(f"{python} has Django installed outside any virtualenv")
    checkout = tmp_path / "checkout"  # a checkout before `make run`: no .venv
    checkout.mkdir()
    shutil.copy(ROOT / "manage.py", checkout / "manage.py")
    result = subprocess.run(
        [python, "manage.py", "migrate"], cwd=checkout, env=_plain_shell(tmp_path), capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "make run" in result.stderr and "pip install -r requirements.txt" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("bind", "url"),
    [
        (None, "http://127.0.0.1:8000"),
        ("", "http://127.0.0.1:8000"),
        ("127.0.0.1:18080", "http://127.0.0.1:18080"),
        ("0.0.0.0:9000", "http://127.0.0.1:9000"),
        ("[::]:9000", "http://[::1]:9000"),
        ("[::1]", "http://[::1]:8000"),
        ("portwatch.example.org", "http://portwatch.example.org:8000"),
    ],
)
def test_make_run_and_site_url_follow_portwatch_bind(monkeypatch, bind, url):
    """What `make run` prints and SITE_URL's default: a browser on this machine reaches it there."""
    from portwatch.env import bind_url

    if bind is None:
        monkeypatch.delenv("PORTWATCH_BIND", raising=False)
    else:
        monkeypatch.setenv("PORTWATCH_BIND", bind)
    assert bind_url() == url


def test_the_readme_configuration_table_names_every_setting_read_from_the_environment():
    read = set(
        re.findall(r"env_(?:str|bool|int|list)\(\s*\"([A-Z_]+)\"", (ROOT / "portwatch" / "settings.py").read_text())
    )
    read |= {"PORTWATCH_BIND"}  # read by portwatch.env.bind_url (and the Procfile)
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    documented = {
        name
        for row in table.splitlines()
        if row.startswith("| `")
        for name in re.findall(r"`([A-Z_]+)`", row.split("|")[1])
    }
    assert read - documented == set()


@pytest.mark.django_db
def test_a_server_error_shows_the_products_own_page(admin, monkeypatch):
    from django.test import Client

    from portwatch.views import OverviewView

    def broken(self, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(OverviewView, "get_context_data", broken)
    client = Client(raise_request_exception=False)
    client.force_login(admin)
    response = client.get("/")
    assert response.status_code == 500
    page = response.content.decode()
    assert "Something went wrong on our side" in page and "a bug" not in page and "Traceback" not in page
