"""How nsnet marks what it owns (decided once per kind; see docs/design.md).

- links (bridges, both veth ends): IFLA_IFALIAS `nsnet:<topology>`;
- namespaces: the alias of the namespace's `lo`, `nsnet:<topology>`;
- routes: route protocol ROUTE_PROTO (`ip route` shows `proto 225`);
- addresses: address protocol ADDRESS_PROTO (IFA_PROTO, Linux 5.18 or later), which
  also tells an address nsnet allocated from one added by hand.
"""

from __future__ import annotations

LABEL_PREFIX = "nsnet:"
ROUTE_PROTO = 225
ADDRESS_PROTO = 225


def label(topology: str) -> str:
    return LABEL_PREFIX + topology


def owner_of(alias: str | None) -> str | None:
    """The topology named by a link alias, or None if nsnet did not make it."""
    if alias and alias.startswith(LABEL_PREFIX):
        return alias[len(LABEL_PREFIX) :]
    return None
