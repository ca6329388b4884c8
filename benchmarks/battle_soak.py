"""Soak: N text battles back to back in headless Chromium, as tests/browser/test_battle_soak.py runs them
(demo models and the local OpenAI-compatible test server with slow, bursty and jittery streams, one dropped
socket, one socket that loses chunks), and prints the figures: battles, stuck battles, HTTP requests per
battle besides the websocket, seconds per battle.

    python benchmarks/battle_soak.py --battles 200

It runs the test through pytest (the test database, the embedded worker and server, Playwright) with
SOAK_BATTLES and SOAK_REPORT set; the test fails on any stuck battle or on more than 3 requests per battle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--battles", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "soak.json"
        env = {**os.environ, "SOAK_BATTLES": str(args.battles), "SOAK_REPORT": str(report)}
        test = "tests/browser/test_battle_soak.py"
        command = [sys.executable, "-m", "pytest", test, "-q", "-p", "no:cacheprovider"]
        run = subprocess.run(command, cwd=ROOT, env=env)
        if not report.exists():
            print("the soak test ended before it could report", file=sys.stderr)
            return run.returncode or 1
        figures = json.loads(report.read_text())
    print(f"battles: {figures['battles']}")
    print(f"stuck: {figures['stuck']} {figures['stuck_codes'] or ''}")
    print(
        f"HTTP requests per battle besides the websocket: max {figures['requests_per_battle_max']}, "
        f"mean {figures['requests_per_battle_mean']:.2f}"
    )
    print(f"seconds per battle (prompt to vote recorded): mean {figures['seconds_per_battle_mean']:.2f}")
    print(f"sockets opened: {figures['sockets_opened']}; state syncs asked: {figures['syncs']}")
    return run.returncode


if __name__ == "__main__":
    sys.exit(main())
