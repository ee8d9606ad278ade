"""A minimal rtnetlink codec: the few requests and dumps nsnet needs, nothing more.

Why not pyroute2 here: its full decoder costs ~3 ms per namespace dump and
its sync API runs an asyncio loop per call; at 1000 namespaces that is
seconds of plan time. These modules encode requests with struct and decode
only the attributes nsnet reads (~0.2 ms per namespace). `socket` is the
transport and the attribute helpers; each message family (`link`, `address`,
`route`, `nsid`, `qdisc`) is one module of functions over the socket, so adding a
family is adding a module; `listener` receives the kernel's announcements.
Message layouts are those of <linux/rtnetlink.h>, <linux/if_link.h>,
<linux/if_addr.h> and <linux/pkt_sched.h>.
"""
