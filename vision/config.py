"""The `vision:` section of a board config: where frames come from, which model runs how,
the thresholds, and the camera calibration.

Defined here (not in `edge`) so the vision library can be configured and used on its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "parcels.onnx"

PROVIDER_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderConfig(_Strict):
    """One onnxruntime execution provider, tried in list order; options go to onnxruntime."""

    name: Literal["cpu", "cuda", "tensorrt"] = Field(
        description="cpu everywhere; cuda / tensorrt on a Jetson or a GPU board"
    )
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict,
        description="provider options, e.g. {device_id: 0} for cuda or "
        "{trt_fp16_enable: true, trt_engine_cache_enable: true} for tensorrt",
    )

    @property
    def ort_name(self) -> str:
        return PROVIDER_NAMES[self.name]


class ReferencePoint(_Strict):
    """A mark on the belt whose position is known both in the image and on the belt."""

    pixel: tuple[float, float] = Field(description="[x, y] in the camera image, px")
    belt_mm: tuple[float, float] = Field(description="[x, y] on the belt plane, mm")


class CalibrationConfig(_Strict):
    """Camera-to-belt calibration: a homography fitted to at least 4 reference points."""

    reference_points: list[ReferencePoint] = Field(
        min_length=4, description="at least 4 points, not all on one line; 6-9 spread out is better"
    )

    @model_validator(mode="after")
    def _not_collinear(self) -> CalibrationConfig:
        import numpy as np

        px = np.array([p.pixel for p in self.reference_points], dtype=float)
        centred = px - px.mean(axis=0)
        if np.linalg.matrix_rank(centred, tol=1.0) < 2:
            raise ValueError("the reference points lie on one line; a homography needs a spread")
        return self


class SourceConfig(_Strict):
    """Where frames come from."""

    uri: str = Field(
        description="a camera index ('0'), a video file, an RTSP/HTTP URL, a GStreamer "
        "pipeline ending in appsink (CSI cameras), or a folder of images"
    )
    width: int | None = Field(None, ge=16, description="requested capture width, px")
    height: int | None = Field(None, ge=16, description="requested capture height, px")
    fps: float | None = Field(None, gt=0, description="requested capture rate")


class ThresholdsConfig(_Strict):
    confidence: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="minimum detection score; default: the model's own, chosen on its "
        "validation sets and kept in its metadata (wolfpack_confidence; 0.2 for the shipped "
        "model), else 0.3",
    )
    iou: float = Field(0.5, gt=0, lt=1, description="NMS overlap above which boxes merge")
    top_k: int = Field(300, ge=1, description="best candidates kept before NMS")
    max_detections: int = Field(50, ge=1, description="detections kept per frame")


class TrackerConfig(_Strict):
    belt_direction: tuple[float, float] = Field(
        (1.0, 0.0), description="unit vector of belt travel in the image"
    )
    px_per_count: float | None = Field(
        None, gt=0, description="image px the belt moves per encoder count (None: learnt)"
    )
    max_missed_frames: int = Field(3, ge=0, description="frames a parcel may go unseen")
    min_frames: int = Field(
        3, ge=1, description="frames a parcel must be seen in to be reported (drops flickers)"
    )
    label_reads_per_frame: int = Field(
        2, ge=0, description="label read attempts per frame, spread over parcels still unread"
    )
    label_attempts_per_parcel: int = Field(
        8,
        ge=1,
        description="frames on which a parcel's label is tried before giving up "
        "(parcels without a label would otherwise cost a read on every frame); the "
        "default leaves room for the reader's 6 views of a parcel wholly in view after 2 "
        "tries while it enters",
    )


class VisionConfig(_Strict):
    """The vision section of a board config."""

    source: SourceConfig | None = None
    model: Path | None = Field(
        None, description="ONNX detector file; default: the shipped parcel model (parcels.onnx)"
    )
    classifier: Path | Literal["auto", "none"] = Field(
        "auto",
        description="parcel classifier run on each detection's full-resolution crop: 'auto' "
        "(the one the model's metadata names, e.g. the shipped parcels-classifier.onnx; "
        "none for YOLO exports), 'none' (the detector's own classes), or an ONNX file",
    )
    providers: list[ProviderConfig] = Field(
        default_factory=lambda: [ProviderConfig(name="cpu")],
        min_length=1,
        description="execution providers in order of preference",
    )
    threads: int | None = Field(
        None, ge=1, description="inference threads; default the physical cores (more is slower)"
    )
    thresholds: ThresholdsConfig = Field(default_factory=ThresholdsConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    calibration: CalibrationConfig | None = None

    @field_validator("providers")
    @classmethod
    def _unique(cls, providers: list[ProviderConfig]) -> list[ProviderConfig]:
        names = [p.name for p in providers]
        if len(set(names)) != len(names):
            raise ValueError(f"each provider may appear once, got {names}")
        return providers

    @property
    def model_path(self) -> Path:
        return self.model if self.model is not None else DEFAULT_MODEL

    @property
    def classifier_choice(self) -> str | Path | None:
        """What ``Detector(classifier=...)`` takes."""
        return None if self.classifier == "none" else self.classifier

    def provider_list(self) -> list[tuple[str, dict[str, Any]]]:
        return [(p.ort_name, {k: str(v) for k, v in p.options.items()}) for p in self.providers]
