"""Moved to ``edge.runtime.config_apply`` (the shared runtime); this old name is the same module."""

import sys

from edge.runtime import config_apply as _moved

sys.modules[__name__] = _moved
