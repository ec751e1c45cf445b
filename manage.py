#!/usr/bin/env python3
"""Django's command-line utility for administrative tasks.

``python3 manage.py ...`` works from a plain shell: run by a Python outside
any virtualenv, it hands itself to the checkout's ``.venv`` (the one ``make
run`` creates) when there is one, and otherwise says how to create it.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
SET_UP = (
    "PortWatch's Python packages are not installed for {python}.\n"
    "Set them up with `make run` (which also starts PortWatch), or with:\n"
    "    python3 -m venv .venv && .venv/bin/pip install -r requirements.txt\n"
    "then run .venv/bin/python manage.py {command} (python3 manage.py also finds .venv)."
)


def _in_a_virtualenv() -> bool:
    return sys.prefix != sys.base_prefix


def _use_the_checkouts_virtualenv() -> None:
    """Re-run this command with .venv's Python when started by a Python outside any virtualenv."""
    venv_python = VENV / "bin" / "python"
    if _in_a_virtualenv() or not venv_python.exists():
        return
    os.execv(venv_python, [str(venv_python), str(ROOT / "manage.py"), *sys.argv[1:]])  # noqa: S606 - this very command


def main():
    _use_the_checkouts_virtualenv()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portwatch.settings")
    try:
        from django.core.management import execute_from_command_line
    except ModuleNotFoundError:
        command = " ".join(sys.argv[1:]) or "help"
        print(SET_UP.format(python=sys.executable, command=command), file=sys.stderr)
        sys.exit(1)
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
