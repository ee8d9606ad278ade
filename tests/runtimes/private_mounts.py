"""Bind-mount each SOURCE over TARGET, then exec COMMAND: run it under `unshare --mount`.

    unshare --mount --propagation private -- python -I private_mounts.py SOURCE TARGET [...] -- COMMAND...

The mounts exist only in the new mount namespace (private propagation: none reaches the host's),
and so in every process COMMAND starts, and they end with the last of those processes. No shell:
the arguments go to `mount` and to exec as they are.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> None:
    split = argv.index("--")
    pairs, command = argv[:split], argv[split + 1 :]
    if len(pairs) % 2 or not command:
        sys.exit("usage: private_mounts.py SOURCE TARGET [SOURCE TARGET...] -- COMMAND...")
    for source, target in zip(pairs[::2], pairs[1::2], strict=True):
        subprocess.run(["mount", "--bind", source, target], check=True)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
