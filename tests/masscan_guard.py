#!/usr/bin/env python3
"""The test suite's masscan: refuses to run at all.

masscan sends raw packets at a rate and has no notion of "loopback only", so
a test may run it only inside its own network-namespace lab, through the
lab's wrapper (``tests.netns.NetnsLab.masscan_path``), which a test sets as
MASSCAN_PATH. tests/settings.py points MASSCAN_PATH here, and the processes
the tests start inherit it, so a test that forgot the lab fails instead of
sweeping the machine's networks.
"""

import sys

if __name__ == "__main__":
    sys.exit("tests/masscan_guard.py: masscan runs only inside a test's namespace lab (NetnsLab.masscan_path)")
