"""`python -I -m netplan_lite.cni`: the CNI plugin (what `nsnet cni install` writes runs the same)."""

import sys

from .plugin import main

if __name__ == "__main__":
    sys.exit(main())
