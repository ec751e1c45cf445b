"""Settings for the test process: the product's settings, with test-only speed-ups.

Processes the tests start (Celery workers, the web server) use the product's
own settings (portwatch.settings) with the environment from tests.conftest.
"""

import os
import tempfile
from pathlib import Path

# Keep the tests' files out of the checkout's var/.
os.environ.setdefault("PORTWATCH_VAR_DIR", tempfile.mkdtemp(prefix="portwatch-test-var-"))
# Every nmap the tests run (here and in the processes they start) goes through
# a guard that refuses targets outside 127.0.0.0/8.
os.environ.setdefault("NMAP_PATH", str(Path(__file__).with_name("nmap_guard.py")))
os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-used-anywhere-else-0123456789")

from portwatch.settings import *  # noqa: F403

# Hashing is not what the tests test.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# Static files are served from the finders in tests; no collectstatic needed.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
