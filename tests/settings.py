"""Settings for the test process: the product's settings, with test-only speed-ups.

Processes the tests start (Celery workers, the web server) use the product's
own settings (portwatch.settings) with the environment from tests.conftest.

``PORTWATCH_TEST_DB=sqlite`` (``make test-sqlite``, part of ``make test``) is
the embedded default's run: no DATABASE_URL, so the product's own SQLite
settings (WAL, IMMEDIATE transactions), on a test database file in this
run's temporary var directory, never the user's var/.
"""

import os
import tempfile
from pathlib import Path

SQLITE_RUN = os.environ.get("PORTWATCH_TEST_DB") == "sqlite"
# Keep the tests' files out of the checkout's var/. The SQLite run always
# starts from a fresh directory (tests.conftest removes it at the end).
if SQLITE_RUN:
    os.environ["PORTWATCH_VAR_DIR"] = tempfile.mkdtemp(prefix="portwatch-test-sqlite-")
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)  # the embedded default: Celery's filesystem broker
os.environ.setdefault("PORTWATCH_VAR_DIR", tempfile.mkdtemp(prefix="portwatch-test-var-"))
# Every nmap the tests run (here and in the processes they start) goes through
# a guard that refuses targets outside 127.0.0.0/8.
os.environ.setdefault("NMAP_PATH", str(Path(__file__).with_name("nmap_guard.py")))
# masscan never runs outside a test's own namespace lab (tests/masscan_guard.py).
os.environ.setdefault("MASSCAN_PATH", str(Path(__file__).with_name("masscan_guard.py")))
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-used-anywhere-else-0123456789")
# Tests read the overview right after changing the inventory: no shared
# reading (tests/test_dashboard.py turns it on where that is what is tested).
os.environ.setdefault("OVERVIEW_CACHE_SECONDS", "0")

from portwatch.settings import *  # noqa: E402, F403

if SQLITE_RUN:
    # A file, not Django's default in-memory test database: the journal mode
    # and locking of a real installation are what this run is for.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405

# Hashing is not what the tests test.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Static files are served from the finders in tests; no collectstatic needed.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
