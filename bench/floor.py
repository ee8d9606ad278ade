"""The raw read floor: the least work that reads the state `nsnet plan` reads.

Run as its own process (`python3 -I -S bench/floor.py`), so that its wall
clock, like nsnet's, includes process start. For the host and for every
namespace under /run/netns (nsnet reads them all to find its own), it enters
the namespace with setns(2), opens one NETLINK_ROUTE socket, and does one
dump each of links, IPv4 addresses and IPv4 routes of the main table
(filtered in the kernel with NETLINK_GET_STRICT_CHK). Messages are counted,
not decoded: decoding is work a reader may choose, receiving them is not.
Prints one JSON line: counts and the in-process seconds.
Standard library only; nothing is imported that the dumps do not need.
"""

import ctypes
import json
import os
import socket
import struct
import time

started = time.perf_counter()

CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_GET_STRICT_CHK = 12
RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE = 18, 22, 26
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
AF_UNSPEC, AF_INET = 0, 2
RT_TABLE_MAIN = 254

BODIES = {
    RTM_GETLINK: struct.pack("=BxHiII", AF_UNSPEC, 0, 0, 0, 0),  # ifinfomsg
    RTM_GETADDR: struct.pack("=BBBBi", AF_INET, 0, 0, 0, 0),  # ifaddrmsg
    RTM_GETROUTE: struct.pack("=BBBBBBBBI", AF_INET, 0, 0, 0, RT_TABLE_MAIN, 0, 0, 0, 0),  # rtmsg
}

libc = ctypes.CDLL(None, use_errno=True)


def dump(sock, kind, seq):
    body = BODIES[kind]
    sock.send(struct.pack("=IHHII", 16 + len(body), kind, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body)
    count = 0
    while True:
        data = sock.recv(1 << 17)
        offset = 0
        while offset < len(data):
            length, mtype = struct.unpack_from("=IH", data, offset)
            if mtype == NLMSG_DONE:
                return count
            if mtype == NLMSG_ERROR:
                code = struct.unpack_from("=i", data, offset + 16)[0]
                if code:
                    raise OSError(-code, os.strerror(-code))
            else:
                count += 1
            offset += (length + 3) & ~3


def open_socket():
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
    sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
    sock.bind((0, 0))
    return sock


def read(sock, totals):
    for i, kind in enumerate((RTM_GETLINK, RTM_GETADDR, RTM_GETROUTE)):
        totals[kind] += dump(sock, kind, i + 1)
    sock.close()


def main():
    totals = {RTM_GETLINK: 0, RTM_GETADDR: 0, RTM_GETROUTE: 0}
    read(open_socket(), totals)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        names = os.listdir("/run/netns")
    except FileNotFoundError:
        names = []
    done = 0
    for name in names:
        try:
            fd = os.open("/run/netns/" + name, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        if libc.setns(fd, CLONE_NEWNET) != 0:
            os.close(fd)
            continue  # a file that is not a namespace
        try:
            sock = open_socket()
        finally:
            if libc.setns(home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
            os.close(fd)
        read(sock, totals)
        done += 1
    print(json.dumps({
        "namespaces": done,
        "links": totals[RTM_GETLINK],
        "addresses": totals[RTM_GETADDR],
        "routes": totals[RTM_GETROUTE],
        "seconds": time.perf_counter() - started,
    }))


main()
