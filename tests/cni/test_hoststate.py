"""The parts of hoststate.py that decide what is the test's, without root."""

from __future__ import annotations

import pytest
from hoststate import jump_target, owner_pattern


@pytest.mark.parametrize(
    ("text", "mine"),
    [
        (r'-A POSTROUTING -s 10.250.9.2/32 -m comment --comment "name: \"cab12fnet\" id: \"c0\"" -j CNI-5715fd3c', True),
        ("cab12fbr", True),
        ("cab12fn12", True),
        (r'-A POSTROUTING -m comment --comment "name: \"cab12f0-reference\" id: \"cab12f0059\"" -j CNI-1', False),
        ("cab12fnetwork", False),
        ("xcab12fbr", False),
        ("cab12fn", False),
    ],
)
def test_a_rule_is_the_tests_when_it_names_one_of_its_names_whole(text, mine):
    assert bool(owner_pattern("cab12f").search(text)) == mine


@pytest.mark.parametrize(
    ("rule", "target"),
    [
        (r'-A POSTROUTING -s 10.0.0.2/32 -m comment --comment "name: \"n\" id: \"c0\"" -j CNI-abc', "CNI-abc"),
        ("-A PREROUTING -m addrtype --dst-type LOCAL -g CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-DNAT"),
        (r'-A CNI-abc -m comment --comment "-j in a comment" -d 10.0.0.0/24', None),
    ],
)
def test_jump_target(rule, target):
    assert jump_target(rule) == target
