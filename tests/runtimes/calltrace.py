"""Which CNI calls a runtime makes, and with what environment.

`trace(BIN_DIR, LOG)` moves every plugin in BIN_DIR to BIN_DIR/.real/ and puts in its place a
wrapper that appends the call's CNI_* environment (and the plugin's name) to LOG as one JSON line,
then execs the real plugin with stdin untouched: delegated calls (the bridge plugin's IPAM through
CNI_PATH) are logged too. `calls(LOG)` reads them back.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

WRAPPER = """#!{python} -IS
import json, os, sys
with open({log!r}, "a") as log:
    log.write(json.dumps({{"plugin": {name!r}, **{{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}}}) + "\\n")
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
"""


def trace(bin_dir: Path, log: Path) -> None:
    real = bin_dir / ".real"
    real.mkdir()
    for plugin in sorted(p for p in bin_dir.iterdir() if p.is_file()):
        plugin.rename(real / plugin.name)
        plugin.write_text(WRAPPER.format(python=sys.executable, log=str(log), name=plugin.name, real=str(real / plugin.name)))
        plugin.chmod(0o755)
    log.touch()


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()]
