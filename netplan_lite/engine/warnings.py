"""Warnings about the host that a plan or run carries alongside its actions.

Defined here, not where they are found (kernel/preflight), so that rendering
them needs no kernel module."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PreflightWarning:
    code: str  # stable: ip-forward-off, forward-policy-drop, host-port-in-use, subnet-overlaps-route, ...
    message: str
    hint: str

    def line(self) -> str:
        return f"warning: {self.message} ({self.hint})"
