"""A real OpenID provider for the tests: tests/oidc_idp (django-oidc-provider) under gunicorn on loopback."""

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.oidc_idp.prepare import CLIENT_ID, CLIENT_SECRET, PEOPLE
from tests.processes import _Process
from tests.stack import free_port

__all__ = ["CLIENT_ID", "CLIENT_SECRET", "PEOPLE", "Provider"]

ROOT = Path(__file__).resolve().parent.parent


class Provider(_Process):
    def __init__(self, root: Path, redirect_uri: str):
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))},
            "DJANGO_SETTINGS_MODULE": "tests.oidc_idp.settings",
            "IDP_DATABASE": str(root / "idp.sqlite3"),
            "IDP_URL": self.url,
        }
        subprocess.run(
            [sys.executable, "-m", "tests.oidc_idp.prepare", redirect_uri], cwd=ROOT, env=env, check=True, timeout=120
        )
        self.log_path = root / "idp.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self.process = subprocess.Popen(
            [gunicorn, "tests.oidc_idp.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", "1", "--threads", "4"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.endpoint("/.well-known/openid-configuration"), timeout=2):
                    break
            except OSError as error:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the provider did not start:\n{self.log()[-3000:]}") from error
                time.sleep(0.2)

    def endpoint(self, path: str) -> str:
        return f"{self.url}/openid{path}"
