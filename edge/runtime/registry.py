"""Machine kinds: the config's ``machine:`` value -> its config section and its factory.

Everything is named by dotted path and imported only when a config asks for that kind, so a
board imports (and needs installed) only the machine it runs. A kind whose module is missing
from this build fails with one line: "machine 'arm' is not available in this build: ...".

To add a kind, add one ``MachineKind`` to ``KINDS`` (docs/runtime.md, "Plugging in").
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge.runtime.machine import MachineError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from edge.config.board import BoardBase
    from edge.runtime.machine import Machine, MachineContext

DEFAULT_KIND = "diverter"


@dataclass(frozen=True)
class MachineKind:
    """One machine kind.

    ``section``: the top-level config key holding the machine's own settings (``cell`` for
    the diverter line); ``config_model``: ``"module:Class"`` of that section's pydantic model;
    ``factory``: ``"module:callable"`` taking ``(board, MachineContext)`` and returning a
    ``Machine``; ``required``: whether a config of this kind must have the section.
    """

    name: str
    section: str
    config_model: str
    factory: str
    description: str
    required: bool = True

    def load_config_model(self) -> type[BaseModel]:
        model = _load(self, self.config_model)
        if not isinstance(model, type):
            raise MachineError(
                f"machine {self.name!r} is not available in this build: {self.config_model} "
                "is not a class"
            )
        return model

    def create(self, board: BoardBase, ctx: MachineContext) -> Machine:
        """Build the machine for ``board`` (a config of this kind, already validated)."""
        factory: Callable[..., Machine] = _load(self, self.factory)
        return factory(board, ctx)


KINDS: dict[str, MachineKind] = {
    k.name: k
    for k in (
        MachineKind(
            "diverter",
            "cell",
            "edge.cell.config:CellConfig",
            "edge.node.cell_node:DiverterMachine",
            "sorting line: belt, photo-eyes, scanners, camera, diverters into chutes",
            required=False,  # a board with only an MCU or a PLC is valid (diagnostics)
        ),
        # issue 14: the sorting arm (edge/arm/, written beside the runtime)
        MachineKind(
            "arm",
            "arm",
            "edge.arm.config:ArmConfig",
            "edge.arm.node:create_machine",
            "sorting arm: conveyor-tracking pick-and-place into chutes or totes",
        ),
        # issue 15: the AMR / unmanned vehicle, VDA 5050 (edge/amr/)
        MachineKind(
            "amr",
            "amr",
            "edge.amr.config:AmrConfig",
            "edge.amr.node:create_machine",
            "AMR / unmanned vehicle directed over VDA 5050",
        ),
    )
}


def kind(name: str) -> MachineKind:
    """The registered kind ``name``; MachineError naming the known ones otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        known = ", ".join(sorted(KINDS))
        raise MachineError(f"unknown machine {name!r}; known machines: {known}") from None


def _load(k: MachineKind, dotted: str) -> Any:
    module_name, _, attr = dotted.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        raise MachineError(
            f"machine {k.name!r} is not available in this build: module {missing!r} is "
            f"missing (needed for {dotted})"
        ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise MachineError(
            f"machine {k.name!r} is not available in this build: {module_name} has no {attr!r}"
        ) from None
