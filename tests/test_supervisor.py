"""portwatch.supervisor: what `make run` and `make demo` start their processes with.

The whole run (Ctrl-C in a terminal, status 0, nothing left) is tests/test_embedded_run.py;
these are the cases a run rarely shows: a bad Procfile, a process that ends by itself.
"""

import signal
import subprocess
import sys

import pytest

from portwatch.supervisor import ProcfileError, parse_procfile
from tests.conftest import ROOT

pytestmark = pytest.mark.sqlite


def test_a_procfile_is_read_line_by_line():
    text = "# comment\n\nweb: gunicorn x --bind ${B:-1}\nworker:   python w.py\n"
    assert parse_procfile(text) == [("web", "gunicorn x --bind ${B:-1}"), ("worker", "python w.py")]


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "no processes"), ("web gunicorn\n", "line 1: expected 'name: command'"), ("a: x\na: y\n", "named twice")],
)
def test_a_bad_procfile_is_refused_with_the_line_named(text, message):
    with pytest.raises(ProcfileError, match=message):
        parse_procfile(text)


def _supervise(tmp_path, procfile: str) -> subprocess.Popen:
    (tmp_path / "Procfile").write_text(procfile)
    return subprocess.Popen(
        [sys.executable, "-m", "portwatch.supervisor", str(tmp_path / "Procfile")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_process_that_ends_by_itself_stops_the_others_and_the_status_names_it(tmp_path):
    marker, ready = tmp_path / "stopped", tmp_path / "ready"
    stays = tmp_path / "stays.py"
    stays.write_text(
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *a: open({str(marker)!r}, 'w').close() or sys.exit(0))\n"
        f"open({str(ready)!r}, 'w').close()\n"
        "time.sleep(60)\n"
    )
    # "fails" ends once "stays" can take SIGTERM (a fixed sleep is a race on a loaded machine).
    fails = f"sh -c 'while [ ! -e {ready} ]; do sleep 0.05; done; echo boom; exit 3'"
    supervisor = _supervise(tmp_path, f"stays: {sys.executable} {stays}\nfails: {fails}\n")
    output, _ = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 1, output
    assert "fails  | boom" in output  # names padded to the longest, "system"
    assert "fails ended by itself (exit status 3): stopping the rest" in output
    assert marker.exists(), "the other process got SIGTERM, so it could stop cleanly"


def test_sigterm_stops_everything_with_status_0(tmp_path):
    supervisor = _supervise(tmp_path, "one: sh -c 'echo up; exec sleep 60'\ntwo: sleep 60\n")
    # The children start once the supervisor handles SIGTERM: wait for one to speak, not a fixed time.
    early = []
    while not (early and early[-1].rstrip().endswith("| up")):
        early.append(supervisor.stdout.readline())
        assert early[-1], "".join(early)  # the supervisor ended before its children started
    supervisor.send_signal(signal.SIGTERM)
    output, _ = supervisor.communicate(timeout=30)
    output = "".join(early) + output
    assert supervisor.returncode == 0, output
    assert "stopping one, two" in output and output.rstrip().endswith("| stopped")
