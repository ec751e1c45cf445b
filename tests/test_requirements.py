"""What the product imports, requirements.txt installs.

The suite runs in the development virtualenv, which holds more than `make
run` installs (test tools, and single sign-on's packages): a module the
product imports that only those bring in passes every test and breaks
`make run` on a fresh machine (the certificates' `cryptography` did, once).
So the imports of the product's code are read (not run) and each
third-party module must come from a distribution pinned in requirements.txt,
or, inside the single sign-on modules, in requirements-sso.txt.
"""

import ast
import re
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

pytestmark = pytest.mark.sqlite

ROOT = Path(__file__).resolve().parent.parent
NOT_PRODUCT = {"tests", "bench", ".venv", "var", "static", "templates", ".git", "node_modules"}
# Optional single sign-on (README, "Single sign-on"): imported only when configured.
SSO_MODULES = {"accounts/directory.py", "accounts/oidc.py", "accounts/oidc_settings.py"}


def pinned(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==", line.strip())
        if match:
            names.add(canonical(match[1]))
    return names


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def product_files() -> list[Path]:
    return [
        path
        for path in ROOT.rglob("*.py")
        if not (set(path.relative_to(ROOT).parts[:1]) & NOT_PRODUCT) and "migrations" not in path.parts
    ]


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module.split(".")[0])
    return modules


def local_packages() -> set[str]:
    return {path.name for path in ROOT.iterdir() if (path / "__init__.py").exists()} | {"manage"}


def test_every_module_the_product_imports_is_installed_by_its_requirements():
    runtime = pinned(ROOT / "requirements.txt")
    optional = runtime | pinned(ROOT / "requirements-sso.txt")
    distributions = packages_distributions()
    local, stdlib = local_packages(), set(sys.stdlib_module_names)
    missing = {}
    files = product_files()
    assert len(files) > 100, "the product's files were not found"
    for path in files:
        allowed = optional if str(path.relative_to(ROOT)) in SSO_MODULES else runtime
        for module in imported_modules(path) - local - stdlib - {"__future__"}:
            providers = {canonical(name) for name in distributions.get(module, [])}
            if not providers & allowed:
                missing.setdefault(module, []).append(str(path.relative_to(ROOT)))
    assert missing == {}, f"imported by the product but not installed by requirements.txt: {missing}"


def test_the_check_finds_a_module_only_the_development_tools_install():
    # pytest is installed here (requirements-dev.txt) and pinned in neither file the product installs.
    assert "pytest" in packages_distributions()
    assert canonical(packages_distributions()["pytest"][0]) not in pinned(ROOT / "requirements.txt")
