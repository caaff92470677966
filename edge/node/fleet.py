"""Moved to ``edge.runtime.fleet`` (the shared runtime); this old name is the same module."""

import sys

from edge.runtime import fleet as _moved

sys.modules[__name__] = _moved
