"""The ingest's SQL takes table names and choice values from the models, never by hand.

Every SQL template of the package (``scans.ingest.postgres.template.TEMPLATES``,
filled as its modules are imported) is held to four rules:

- a quoted literal compared with a column (``=``, ``<>``, ``IN (...)``) is a
  member of that column's enum (the model field's choices, or ``STAGED``
  below for the staging tables' columns);
- no literal in a template spells out a choice value: ``{PortState.OPEN}``,
  never ``'open'`` (a renamed value would otherwise silently match nothing);
- no model's table is named by hand, in a template or in any string of the
  package's code: ``{Service}``, never ``inventory_service``;
- the columns it names on a model's table (``s.state``, an INSERT's column
  list, an UPDATE's SET) are that model's.

``test_the_checker_catches_*`` feed it broken templates, so it is shown to fail.
"""

import ast
import re
from pathlib import Path

import pytest
from django.apps import apps

import scans.ingest.entry  # every module of the package: TEMPLATES filled
from inventory.choices import HostStatus, PortState
from scans.choices import ChangeKind
from scans.ingest.postgres.copy_rows import StagedRow
from scans.ingest.postgres.template import ENUMS, MODELS, NAMESPACE, TEMPLATES

# No database: the templates are checked as text (in the SQLite run too).
pytestmark = pytest.mark.sqlite

PACKAGE = Path(scans.ingest.entry.__file__).parent

# Columns of the staging tables that hold values of a model column (or of the staging rows' kinds).
STAGED = {
    "old_state": PortState,
    "new_state": PortState,
    "other_state": PortState,
    "old_status": HostStatus,
    "row_kind": StagedRow,
}


def column_enums() -> dict[str, tuple[str, set[str]]]:
    """Column name -> (the name of the enum its values come from, those values)."""
    enums = {column: (enum.__name__, {member.value for member in enum}) for column, enum in STAGED.items()}
    for model in MODELS:
        for field in model._meta.concrete_fields:
            if field.choices:
                names = [e.__name__ for e in ENUMS if list(getattr(e, "choices", ())) == list(field.choices)]
                name = names[0] if names else f"{model.__name__}.{field.name} choice"
                blank = {""} if field.blank else set()  # a host's change has no protocol
                enums[field.column] = (name, {value for value, _ in field.choices} | blank)
    return enums


def model_tables() -> dict[str, type]:
    """Every model's table (unmanaged ones too: StagedPort's is the engine's temporary table)."""
    return {model._meta.db_table: model for model in apps.get_models()}


def _code(sql: str) -> str:
    """``sql`` without its comments."""
    return "\n".join(line.split("--", 1)[0] for line in sql.splitlines())


def _literals(text: str) -> list[str]:
    return re.findall(r"'((?:[^']|'')*)'", text)


COMPARED = re.compile(r"(?:\b\w+\.)?\b(\w+)\s*(?:=|<>|!=)\s*'((?:[^']|'')*)'")
COMPARED_BACK = re.compile(r"'((?:[^']|'')*)'\s*(?:=|<>|!=)\s*(?:\w+\.)?(\w+)\b")
UPDATE_SET = re.compile(r"\bUPDATE\s+(\w+)\s+\w+\s+SET\b(.*?)(?:\bFROM\b|\bWHERE\b|$)", re.S)
IN_LIST = re.compile(r"(?:\b\w+\.)?\b(\w+)\s+(?:NOT\s+)?IN\s*\(([^()]*)\)", re.IGNORECASE)


def literal_problems(filled: str) -> list[str]:
    """Quoted literals compared with a column of an enum that they are not a member of."""
    enums = column_enums()
    code = _code(filled)
    compared = [(column, value) for column, value in COMPARED.findall(code)]
    compared += [(column, value) for value, column in COMPARED_BACK.findall(code)]
    for column, items in IN_LIST.findall(code):
        compared += [(column, value) for value in _literals(items)]
    problems = []
    for column, value in compared:
        name, members = enums.get(column, ("", None))
        if members is not None and value not in members:
            problems.append(f"'{value}' is compared with {column}, but is not a {name}")
    return problems


def hand_written_problems(template: str) -> list[str]:
    """Choice values and table names a template spells out instead of naming them."""
    values = {str(member.value): f"{enum.__name__}.{member.name}" for enum in ENUMS for member in enum}
    code = _code(template)
    problems = [
        f"'{value}' is written by hand: write {{{values[value]}}}" for value in _literals(code) if value in values
    ]
    for table, model in model_tables().items():
        if re.search(rf"\b{table}\b", code):
            problems.append(f"the table {table} is named by hand: write {{{model.__name__}}}")
    return problems


def _bound_aliases(statement: str) -> dict[str, type]:
    """Aliases of managed models' tables in one statement (an alias also used for another table is left out)."""
    tables = model_tables()
    bound: dict[str, type] = {}
    ambiguous = set()
    for table, alias in re.findall(r"\b(?:FROM|JOIN|UPDATE|INTO)\s+(\w+)\s+(?:AS\s+)?(\w+)", statement, re.I):
        model = tables.get(table)
        if model is None or not model._meta.managed:
            ambiguous.add(alias)
        else:
            bound[alias] = model
    return {alias: model for alias, model in bound.items() if alias not in ambiguous}


def _columns(model) -> set[str]:
    return {field.column for field in model._meta.concrete_fields}


def _assignments(text: str) -> list[str]:
    """The columns of an UPDATE's SET list (split at top-level commas)."""
    columns, depth, start = [], 0, 0
    for index, char in enumerate(text + ","):
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            match = re.match(r"\s*(\w+)\s*=", text[start:index])
            if match:
                columns.append(match.group(1))
            start = index + 1
    return columns


def column_problems(filled: str) -> list[str]:
    """Columns named on a model's table that the model does not have."""
    problems = []
    tables = model_tables()
    for statement in _code(filled).split(";"):
        for alias, model in _bound_aliases(statement).items():
            for column in re.findall(rf"(?<![\w.]){alias}\.(\w+)", statement):
                if column not in _columns(model):
                    problems.append(f"{alias}.{column}: {model.__name__} has no column {column}")
        for table, listed in re.findall(r"\bINSERT\s+INTO\s+(\w+)\s*\(([^)]*)\)", statement, re.I):
            model = tables.get(table)
            if model is not None and model._meta.managed:
                for column in re.findall(r"\w+", listed):
                    if column not in _columns(model):
                        problems.append(f"INSERT INTO {table}: {model.__name__} has no column {column}")
        for table, assigned in re.findall(
            r"\bUPDATE\s+(\w+)\s+\w+\s+SET\b(.*?)(?:\bFROM\b|\bWHERE\b|$)", statement, re.S
        ):
            model = tables.get(table)
            if model is not None and model._meta.managed:
                for column in _assignments(assigned):
                    if column not in _columns(model):
                        problems.append(f"UPDATE {table}: {model.__name__} has no column {column}")
    return problems


def problems(template: str, filled: str | None = None) -> list[str]:
    filled = template.format_map(NAMESPACE) if filled is None else filled
    return hand_written_problems(template) + literal_problems(filled) + column_problems(filled)


def test_the_package_has_its_templates_registered():
    assert {"create_staging", "hosts", "host_writes", "ports", "port_writes", "port_updates", "counts"} <= set(
        TEMPLATES
    )


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_sql_template_takes_its_names_and_values_from_the_models(name):
    template, filled = TEMPLATES[name]
    assert problems(template, filled) == []


def test_the_checker_reads_the_real_comparisons():
    """Not vacuous: the real templates compare enum columns with members, and these are seen."""
    filled = "\n".join(filled for _, filled in TEMPLATES.values())
    code = _code(filled)
    seen = {column for column, _ in COMPARED.findall(code)} | {column for column, _ in IN_LIST.findall(code)}
    assert {"state", "status", "old_state", "new_state", "old_status", "row_kind", "kind"} <= seen
    aliases = {alias for statement in _code(filled).split(";") for alias in _bound_aliases(statement)}
    assert {"s", "h", "c"} <= aliases


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("SELECT 1 FROM {Service} s WHERE s.state = 'opne'", "'opne' is compared with state, but is not a PortState"),
        (
            "SELECT 1 FROM {Host} h WHERE h.status = {PortState.OPEN}",
            "'open' is compared with status, but is not a HostStatus",
        ),
        (
            "SELECT 1 FROM {Change} c WHERE c.kind IN ({ChangeKind.PORT_OPENED}, 'port_closd')",
            "'port_closd' is compared with kind, but is not a ChangeKind",
        ),
        ("SELECT 1 FROM pw_obs WHERE row_kind = 'x'", "'x' is compared with row_kind, but is not a StagedRow"),
        (
            "SELECT 1 FROM {Service} s WHERE s.state <> 'closed'",
            "'closed' is written by hand: write {PortState.CLOSED}",
        ),
        ("DELETE FROM inventory_service WHERE FALSE", "the table inventory_service is named by hand: write {Service}"),
        ("SELECT count(*) FROM pw_upd", "the table pw_upd is named by hand: write {StagedPort}"),
        ("SELECT s.stat FROM {Service} s", "s.stat: Service has no column stat"),
        ("UPDATE {Service} s SET stail = TRUE WHERE s.id = 1", "UPDATE inventory_service: Service has no column stail"),
        ("INSERT INTO {Host} (address, adress) SELECT 1, 2", "INSERT INTO inventory_host: Host has no column adress"),
    ],
)
def test_the_checker_catches_a_broken_template(template, expected):
    assert expected in problems(template)


def test_the_checker_passes_a_correct_template():
    template = (
        "UPDATE {Service} s SET state = {PortState.CLOSED}, stale = (s.state = {PortState.OPEN})\n"
        "FROM {Change} c WHERE c.host_id = s.host_id AND c.kind IN {STATE_CHANGE_KINDS}\n"
        "  AND {ChangeKind.PORT_CLOSED} = c.kind AND c.protocol = ''"
    )
    assert problems(template) == []


def _strings(tree: ast.AST) -> list[str]:
    """String constants of the code, docstrings left out."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_no_module_of_the_package_names_a_table_by_hand(path):
    tables = model_tables()
    found = [
        table for text in _strings(ast.parse(path.read_text())) for table in tables if re.search(rf"\b{table}\b", text)
    ]
    assert found == []


def test_the_source_check_catches_a_table_named_in_code():
    code = 'CLEAN = sql("x", "SELECT 1 FROM {Service}")\nBAD = "ANALYZE inventory_host"\n'
    strings = _strings(ast.parse(code))
    assert [table for text in strings for table in model_tables() if re.search(rf"\b{table}\b", text)] == [
        "inventory_host"
    ]
    assert ChangeKind.PORT_OPENED.value in {str(member.value) for member in ChangeKind}
