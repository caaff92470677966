"""The reference brain: assigns chutes from labels by a documented rule (``sort_plan``), can
be made slow or absent (``policy``), and answers over the fleet link (``service``)."""

from sim_hardware.brain.config import BrainConfig
from sim_hardware.brain.policy import Decision, ReferenceBrain
from sim_hardware.brain.sort_plan import SortPlanError, chute_for_label

__all__ = ["BrainConfig", "Decision", "ReferenceBrain", "SortPlanError", "chute_for_label"]
