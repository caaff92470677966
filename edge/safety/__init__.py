"""The cell's safety state machine (boot, ready, running, stopping, e-stop, fault)."""

from edge.safety.config import SafetyConfig
from edge.safety.machine import SafetyMachine, State, Transition

__all__ = ["SafetyConfig", "SafetyMachine", "State", "Transition"]
