"""A container root filesystem made of one static busybox: no image, no registry.

`make_rootfs(DIR)` copies busybox-static's /usr/bin/busybox to DIR/bin/busybox, links the applets
the tests run (sh, httpd, wget, nc, ip, ping, sleep, ...) to it, and writes /etc/passwd, /etc/group
and /www/index.html (what `httpd -h /www` serves: INDEX). Podman runs it with `--rootfs DIR`,
containerd's ctr with `ctr run --rootfs DIR`.
"""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

BUSYBOX = Path("/usr/bin/busybox")
APPLETS = ("sh", "httpd", "wget", "nc", "ip", "ping", "sleep", "cat", "echo", "ls", "hostname", "true", "ps", "kill")
INDEX = "served by busybox httpd\n"
PT_INTERP = 3


def is_static(binary: Path) -> bool:
    """Whether the 64-bit ELF BINARY has no program interpreter (busybox, not busybox-static, has one)."""
    data = binary.read_bytes()
    if data[:5] != b"\x7fELF\x02":
        return False
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != PT_INTERP for i in range(phnum))


def skip_reason() -> str | None:
    if not BUSYBOX.is_file():
        return f"{BUSYBOX} is missing (apt-get install busybox-static)"
    if not is_static(BUSYBOX):
        return f"{BUSYBOX} is not static (apt-get install busybox-static, which replaces busybox)"
    return None


def make_rootfs(root: Path) -> Path:
    for sub in ("bin", "etc", "proc", "sys", "dev", "tmp", "www", "root"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    (root / "www" / "index.html").write_text(INDEX)
    return root
