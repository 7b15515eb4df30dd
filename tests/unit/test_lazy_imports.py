"""The web app starts without asyncua (most of a second to import, and only the equipment
processes and a setpoint write need it): importing the app and every route module leaves it
unimported."""

from __future__ import annotations

import subprocess
import sys


def test_the_app_does_not_import_asyncua() -> None:
    code = (
        "import sys\n"
        "import opencdmo.app\n"
        "opencdmo.app.discover_routes()\n"
        "print('asyncua' in sys.modules)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert found.stdout.strip() == "False", found.stderr
