"""A 1000-namespace lab needs ~2000 fds: the session lifts the soft limit (Debian's default is 1024)."""

import subprocess
import sys

SCRIPT = """
import resource
from netplan_lite.kernel.netlink import raise_open_file_limit
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
raise_open_file_limit()
print(resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard))
"""


def test_soft_limit_is_raised_to_the_hard_limit():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"
