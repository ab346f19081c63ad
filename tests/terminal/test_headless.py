"""The emulator package is headless: importing it loads neither textual nor docker."""

import subprocess
import sys


def test_terminal_package_does_not_import_textual_or_docker():
    code = (
        "import sys, crowdtui.terminal, crowdtui.terminal.emulator, crowdtui.terminal.keys, crowdtui.terminal.mouse;"
        "bad = [m for m in ('textual', 'docker', 'rich') if m in sys.modules];"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"crowdtui.terminal loaded {out}"
