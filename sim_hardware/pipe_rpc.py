"""The control side of a simulator run in its own process: get or call by dotted path.

Simulators that must keep time away from the node's interpreter lock (the MCU, the whole
cell) run in a child process; tests and benchmarks reach into them through one pipe.
"""

from __future__ import annotations

from typing import Any


class PipeClient:
    """Mixin: ``self._conn`` is the parent's end of the pipe, ``rpc_name`` names the child."""

    _conn: Any
    rpc_name = "simulator"

    def _ask(self, kind: str, path: str, args: tuple[Any, ...]) -> Any:
        self._conn.send((kind, path, args))
        if not self._conn.poll(10):
            raise TimeoutError(f"the {self.rpc_name} process did not answer {kind} {path}")
        status, value = self._conn.recv()
        if status == "error":
            raise RuntimeError(value)
        return value

    def call(self, path: str, *args: Any) -> Any:
        """Call the function at ``path`` inside the child and return its result."""
        return self._ask("call", path, args)

    def get(self, path: str) -> Any:
        """Read the attribute at ``path`` inside the child."""
        return self._ask("get", path, ())


def resolve_path(root: object, path: str) -> Any:
    """The child's side: the object at a dotted attribute path, e.g. ``world.score.summary``."""
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj
