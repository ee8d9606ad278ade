"""`nsnet cni install --bin-dir DIR`: the plugin executable runtimes find in their CNI_PATH.

It is a script run by this installation's interpreter, by absolute path and
with -I (isolated: no PYTHON* variables, no user site, not the caller's
directory): a `python3` found on PATH may be a slow shim or another Python
without nsnet.
"""

from __future__ import annotations

import os
import sys
import tempfile

PLUGIN_NAME = "nsnet"
# A running `nsnet agent` has the engine imported: handing it the call saves the ~70 ms of imports
# (the client is the standard library's); without one, the call runs here.
SCRIPT = """#!{python} -I
# nsnet's CNI plugin, written by `nsnet cni install`; runtimes call it as `type: "{name}"`.
import sys
from netplan_lite.agent import client
code = client.run(["cni", "plugin"])
if code is None:
    from netplan_lite.cni.plugin import main
    code = main()
sys.exit(code)
"""


def script(python: str = sys.executable) -> str:
    return SCRIPT.format(python=os.path.abspath(python), name=PLUGIN_NAME)


def install(bin_dir: str, python: str = sys.executable) -> str:
    """Write DIR/nsnet atomically (a runtime never runs a half-written plugin); returns its path."""
    os.makedirs(bin_dir, exist_ok=True)
    target = os.path.join(bin_dir, PLUGIN_NAME)
    fd, temp = tempfile.mkstemp(prefix=f".{PLUGIN_NAME}.", dir=bin_dir)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(script(python))
        os.chmod(temp, 0o755)
        os.replace(temp, target)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise
    return target
