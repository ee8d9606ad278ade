"""Pre-flight: warnings about host settings that make a correct topology fail at run time.

`checks` is pure (facts in, warnings out); `hostfacts` reads the facts. The
two names below are the entry points the commands call as
`preflight.check(topology, preflight.gather(topology))`; everything else
imports the two modules directly.
"""

from .checks import check
from .hostfacts import gather

__all__ = ["check", "gather"]
