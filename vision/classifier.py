"""The second stage of the shipped model: a parcel classifier on full-resolution crops.

The detector runs on a 4x-reduced frame, which is enough to find parcels but not to tell a
light polybag from an envelope or a white box; the classifier sees each detected parcel
upright at the frame's own resolution (``vision/crops.py``) and gives its class. A detector
names its classifier in its ONNX metadata (``wolfpack_classifier``, a file beside it), so the
pair travels and loads as one model; a user's YOLO export has none and runs alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from vision.crops import CROP_WH, MARGIN, upright_crops
from vision.decoders import parse_names
from vision.detections import OrientedBox
from vision.sessions import open_session

FORMAT = "parcel-classifier-v1"


class ClassifierError(RuntimeError):
    """The classifier file cannot be used; the message says which file and why."""


class ParcelClassifier:
    """Class probabilities for parcels given by their oriented boxes in a BGR frame."""

    def __init__(
        self,
        path: str | Path,
        session_options: ort.SessionOptions,
        providers: list[tuple[str, dict[str, str]]],
    ) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ClassifierError(f"{self.path}: classifier file not found")
        self.session = open_session(self.path, session_options, providers, ClassifierError)
        meta = dict(self.session.get_modelmeta().custom_metadata_map)
        found = meta.get("wolfpack_format")
        if found != FORMAT:
            raise ClassifierError(
                f"{self.path}: not a parcel classifier (metadata wolfpack_format is "
                f"{found!r}, expected {FORMAT!r})"
            )
        names = parse_names(meta)
        if not names:
            raise ClassifierError(f"{self.path}: no class names in its metadata ('names')")
        self.names = names
        try:
            w, h = json.loads(meta.get("crop_wh", json.dumps(list(CROP_WH))))
            self.crop_wh = (int(w), int(h))
            self.margin = float(meta.get("margin", MARGIN))
        except (TypeError, ValueError) as exc:
            raise ClassifierError(f"{self.path}: bad crop_wh/margin metadata: {exc}") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.providers = self.session.get_providers()
        blank = np.zeros((1, 3, self.crop_wh[1], self.crop_wh[0]), np.float32)
        try:
            for _ in range(3):  # warm-up, as the detector does
                out = self.session.run([self.output_name], {self.input_name: blank})[0]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ClassifierError(
                f"{self.path}: cannot run on {self.crop_wh[0]}x{self.crop_wh[1]} crops (its "
                f"crop_wh metadata): {exc}"
            ) from exc
        if out.shape != (1, len(names)):
            raise ClassifierError(
                f"{self.path}: gives {list(out.shape)} per crop, expected [1, {len(names)}] "
                "(one probability per class name)"
            )

    def crops(
        self, image: np.ndarray, boxes: list[OrientedBox], half: np.ndarray | None = None
    ) -> list[np.ndarray]:
        return upright_crops(image, boxes, self.crop_wh, self.margin, half)

    def classify(
        self, image: np.ndarray, boxes: list[OrientedBox], half: np.ndarray | None = None
    ) -> np.ndarray:
        """N x C class probabilities, one row per box (all in one batch). ``half``: the
        frame already halved by ``vision.crops.halve``, if the caller has it."""
        if not boxes:
            return np.zeros((0, len(self.names)), np.float32)
        blob = cv2.dnn.blobFromImages(self.crops(image, boxes, half), 1.0 / 255.0, swapRB=True)
        return self.session.run([self.output_name], {self.input_name: blob})[0]
