"""`nsnet cni install --bin-dir DIR`: the plugin executable runtimes find in their CNI_PATH.

It is a script run by this installation's interpreter, by absolute path and
with -I (isolated: no PYTHON* variables, no user site, not the caller's
directory): a `python3` found on PATH may be a slow shim or another Python
without nsnet. And with -S: the script names nsnet's and its dependencies'
directories itself, which saves the ~10 ms `site` takes at every call.
"""

from __future__ import annotations

import os
import site
import sys
import tempfile

import netplan_lite

PLUGIN_NAME = "nsnet"
# A running `nsnet agent` has the engine imported: handing it the call saves the ~70 ms of imports
# (the client is the standard library's); without one, the call runs here.
SCRIPT = """#!{python} -IS
# nsnet's CNI plugin, written by `nsnet cni install`; runtimes call it as `type: "{name}"`.
import sys
sys.path[:0] = {paths!r}  # nsnet and its dependencies: what site adds, without its start-up (-S)
sys.prefix = sys.exec_prefix = {prefix!r}  # and the virtualenv it sets (an agent checks it runs this installation)
from netplan_lite.agent import client
code = client.run(["cni", "plugin"])
if code is None:
    from netplan_lite.cni.plugin import main
    code = main()
sys.exit(code)
"""


def script(python: str = sys.executable) -> str:
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(netplan_lite.__file__)))  # an editable install's too
    paths = list(dict.fromkeys([package_parent, *site.getsitepackages()]))
    return SCRIPT.format(python=os.path.abspath(python), name=PLUGIN_NAME, paths=paths, prefix=sys.prefix)


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
