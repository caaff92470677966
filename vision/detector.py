"""The detector runtime: an onnxruntime session, letterboxing, decoding and NMS.

Threads default to the physical core count: onnxruntime slows down sharply with more
intra-op threads than physical cores (YOLO11n@640 on 2 cores: 55 ms with 2, 182 ms with 4).
The session is warmed up at start so the first real frame does not pay for allocation.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vision.classifier import ClassifierError, ParcelClassifier
from vision.crops import halve
from vision.decoders import CenterNetDecoder, Decoder, choose_decoder
from vision.detections import Detection, OrientedBox
from vision.letterbox import Letterbox, letterbox, to_tensor
from vision.nms import nms
from vision.sessions import open_session, session_options

log = logging.getLogger("wolfpack.vision")

CPU = ("CPUExecutionProvider", {})


def physical_cores() -> int:
    """Physical cores (not hardware threads), from sysfs; os.cpu_count() if unknown."""
    cores: set[tuple[str, str]] = set()
    base = Path("/sys/devices/system/cpu")
    for cpu in base.glob("cpu[0-9]*"):
        try:
            pkg = (cpu / "topology/physical_package_id").read_text().strip()
            core = (cpu / "topology/core_id").read_text().strip()
        except OSError:
            continue
        cores.add((pkg, core))
    if cores:
        try:
            allowed = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            allowed = len(cores)
        return max(1, min(len(cores), allowed))
    return os.cpu_count() or 1


SPIN_DEFAULT = False


class ModelError(RuntimeError):
    """The model file cannot be loaded or run; the message says which file and why."""


@dataclass
class StageTimes:
    """Milliseconds spent in each stage for one frame."""

    preprocess: float = 0.0
    inference: float = 0.0
    nms: float = 0.0  # decoding + top-k + NMS
    extra: dict[str, float] = field(default_factory=dict)


# a model's own confidence threshold, chosen on its validation sets, rides in its metadata
# (``training/set_confidence.py``): a score threshold is a property of the model that made
# the scores, not of the board. Models without it (YOLO exports, older files) get 0.3
CONFIDENCE_KEY = "wolfpack_confidence"
DEFAULT_CONFIDENCE = 0.3


@dataclass(frozen=True)
class DetectorSettings:
    confidence: float | None = None  # None: the model's own (``CONFIDENCE_KEY``), else 0.3
    iou: float = 0.5
    top_k: int = 300
    max_detections: int = 50


class Detector:
    """Runs one ONNX detector on BGR frames and returns detections in frame pixels."""

    def __init__(
        self,
        model: str | Path,
        providers: list[tuple[str, dict[str, str]]] | None = None,
        threads: int | None = None,
        settings: DetectorSettings | None = None,
        warmup_runs: int = 3,
        classifier: str | Path | None = "auto",
        spin: bool = SPIN_DEFAULT,
    ) -> None:
        """``classifier``: "auto" loads the one the model's metadata names (a file beside
        the model), a path loads that one, None runs the detector's own classes."""
        self.path = Path(model)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: model file not found")
        self.settings = settings or DetectorSettings()
        self.threads = threads or physical_cores()
        opts = session_options(self.threads, spin=spin)
        chosen = self._providers(providers or [CPU])
        self.session = open_session(self.path, opts, chosen, ModelError)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)
        self.input_hw = self._input_size(inp.shape, self.metadata)
        # a config's threshold makes the metadata's moot: a bad one then only warns
        self.model_confidence = self._model_confidence(strict=self.settings.confidence is None)
        if self.settings.confidence is None:
            self.settings = replace(self.settings, confidence=self.model_confidence)
        outputs = [(o.name, list(o.shape)) for o in self.session.get_outputs()]
        self.decoder: Decoder
        self.decoder, self.names = choose_decoder(outputs, self.metadata)
        self.layout = self.decoder.layout
        self.output_names = [o for o, _ in outputs]
        self.providers = self.session.get_providers()
        for _ in range(warmup_runs):
            self.session.run(self.output_names, {self.input_name: self.blank_input()})
        # one thread, no spinning: its batch (a frame's few crops) is too small to split, and
        # a second spinning pool beside the detector's would fight it for the cores
        self.classifier = self._load_classifier(classifier, session_options(1, spin=False), chosen)
        log.info(
            "detector %s: layout %s, input %sx%s, %d threads, providers %s, classifier %s, "
            "confidence %g (the model's own: %g)",
            self.path.name,
            self.layout,
            self.input_hw[1],
            self.input_hw[0],
            self.threads,
            self.providers,
            self.classifier.path.name if self.classifier else "none",
            self.settings.confidence,
            self.model_confidence,
        )

    def _model_confidence(self, strict: bool) -> float:
        """The threshold the model's metadata carries, else ``DEFAULT_CONFIDENCE``; one that
        is not a score raises (``strict``) or is logged and replaced by the default."""
        text = self.metadata.get(CONFIDENCE_KEY)
        if text is None:
            return DEFAULT_CONFIDENCE
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 < value < 1:
            why = (
                f"{self.path}: metadata {CONFIDENCE_KEY}={text!r} is not a score threshold "
                "between 0 and 1; set vision.thresholds.confidence in the config, or fix the "
                "model with training/set_confidence.py"
            )
            if strict:
                raise ModelError(why)
            log.warning("%s (the config's threshold is used)", why)
            return DEFAULT_CONFIDENCE
        return value

    def _load_classifier(
        self,
        wanted: str | Path | None,
        opts: ort.SessionOptions,
        providers: list[tuple[str, dict[str, str]]],
    ) -> ParcelClassifier | None:
        if wanted is None:
            return None
        if str(wanted) == "auto":
            named = self.metadata.get("wolfpack_classifier")
            if not named:
                return None
            path = self.path.parent / named
            if not path.is_file():
                raise ModelError(
                    f"{self.path}: its metadata names the classifier {named!r}, expected at "
                    f"{path}, which is missing; copy it beside the model, or run without it "
                    "(vision.classifier: none in the config)"
                )
        else:
            path = Path(wanted)
        try:
            classifier = ParcelClassifier(path, opts, providers)
        except ClassifierError as exc:
            raise ModelError(str(exc)) from exc
        if classifier.names != self.names:
            raise ModelError(
                f"{classifier.path}: its classes {classifier.names} differ from the "
                f"detector's {self.names} ({self.path})"
            )
        if self.decoder.layout != CenterNetDecoder.layout:
            raise ModelError(
                f"{classifier.path}: a classifier needs oriented boxes, which the "
                f"{self.layout} layout of {self.path.name} does not give"
            )
        return classifier

    @staticmethod
    def _providers(wanted: list[tuple[str, dict[str, str]]]) -> list[tuple[str, dict[str, str]]]:
        available = set(ort.get_available_providers())
        chosen = [(p, o) for p, o in wanted if p in available]
        for p, _ in wanted:
            if p not in available:
                log.warning(
                    "execution provider %s is not available in this onnxruntime build "
                    "(available: %s); skipping it",
                    p,
                    ", ".join(sorted(available)),
                )
        if not any(p == CPU[0] for p, _ in chosen):
            chosen.append(CPU)  # the last resort every build has
        return chosen

    @staticmethod
    def _input_size(shape: list, meta: dict[str, str]) -> tuple[int, int]:
        if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
            return int(shape[2]), int(shape[3])
        raw = meta.get("imgsz")
        if raw:
            try:
                v = json.loads(raw)
                if isinstance(v, list) and len(v) == 2:
                    return int(v[0]), int(v[1])
                if isinstance(v, int):
                    return v, v
            except ValueError:
                pass
        return 640, 640

    def blank_input(self) -> np.ndarray:
        return np.zeros((1, 3, *self.input_hw), dtype=np.float32)

    def prepare(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """The model's input tensor for ``image`` and how the frame was placed in it."""
        tensor, lb, _half = self._prepare(image)
        return tensor, lb

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox, np.ndarray | None]:
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an H x W x 3 BGR image, got shape {image.shape}")
        h, w = image.shape[:2]
        th, tw = self.input_hw
        if self.classifier is not None and min(th / h, tw / w) <= 0.5 and h % 2 == w % 2 == 0:
            # the classifier crops large parcels from the frame halved; so does the letterbox
            # on its way down (the same pixels as from the full frame), so halve once
            half = halve(image)
            boxed, lb = letterbox(half, self.input_hw)
            return to_tensor(boxed), Letterbox(lb.scale / 2, lb.pad_x, lb.pad_y), half
        boxed, lb = letterbox(image, self.input_hw)
        return to_tensor(boxed), lb, None

    def detect(self, image: np.ndarray, times: StageTimes | None = None) -> list[Detection]:
        """Detections in ``image`` (BGR), best first, each with the classifier's class when
        the model has one; stage timings go into ``times``."""
        dets, half = self.locate(image, times)
        if self.classifier is not None:
            t0 = time.perf_counter()
            if dets:
                dets = self.classify(image, dets, half)
                dets.sort(key=lambda d: -d.confidence)
            if times is not None:
                times.extra["classify"] = (time.perf_counter() - t0) * 1e3
        return dets

    def locate(
        self, image: np.ndarray, times: StageTimes | None = None
    ) -> tuple[list[Detection], np.ndarray | None]:
        """Detections in ``image`` with the detector's own classes, best first, and the
        frame halved on the way (None if it was not), which ``classify`` reuses. Apart from
        ``classify`` so that a tracker can classify only the parcels whose class is not yet
        settled (the classifier was ~22 % of the belt camera's worker a frame)."""
        t0 = time.perf_counter()
        tensor, lb, half = self._prepare(image)
        t1 = time.perf_counter()
        outputs = self.session.run(self.output_names, {self.input_name: tensor})
        t2 = time.perf_counter()
        s = self.settings
        assert s.confidence is not None  # resolved in __init__
        cands = self.decoder.decode(outputs, s.confidence, s.top_k)
        agnostic = isinstance(self.decoder, CenterNetDecoder)
        keep = nms(cands, s.iou, s.max_detections, class_agnostic=agnostic)
        h, w = image.shape[:2]
        boxes = lb.to_frame(cands.boxes[keep]) if len(keep) else np.zeros((0, 4), np.float32)
        boxes[:, 0::2] = boxes[:, 0::2].clip(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clip(0, h)
        dets = []
        for j, i in enumerate(keep):
            cid = int(cands.class_ids[i])
            oriented = None
            if cands.oriented is not None:
                cx, cy, length, width, angle = cands.oriented[i].tolist()
                (fx, fy), sc = lb.to_frame(np.array([cx, cy]))[:2], lb.scale
                oriented = OrientedBox(float(fx), float(fy), length / sc, width / sc, angle)
            dets.append(
                Detection(
                    class_id=cid,
                    class_name=self.names.get(cid, f"class{cid}"),
                    confidence=float(cands.scores[i]),
                    box=tuple(float(v) for v in boxes[j]),
                    oriented=oriented,
                )
            )
        t3 = time.perf_counter()
        if times is not None:
            times.preprocess = (t1 - t0) * 1e3
            times.inference = (t2 - t1) * 1e3
            times.nms = (t3 - t2) * 1e3
        return dets, half

    def classify(
        self, image: np.ndarray, dets: list[Detection], half: np.ndarray | None = None
    ) -> list[Detection]:
        """``dets`` (from ``locate`` on ``image``; ``half``: the halved frame it gave) with
        the classifier's class, in the same order; unchanged without a classifier. The
        score becomes the detector's times the classifier's probability, so an unsure class
        ranks below a sure one."""
        if self.classifier is None or not dets:
            return list(dets)
        return self._classify(image, dets, half)

    def _classify(
        self, image: np.ndarray, dets: list[Detection], half: np.ndarray | None
    ) -> list[Detection]:
        """The classifier's class for each detection; its score is the detector's times the
        classifier's probability, so an unsure class ranks below a sure one."""
        assert self.classifier is not None
        boxes = [d.oriented for d in dets]
        probs = self.classifier.classify(image, boxes, half)  # type: ignore[arg-type]
        out = []
        for d, p in zip(dets, probs, strict=True):
            cid = int(np.argmax(p))
            out.append(
                replace(
                    d,
                    class_id=cid,
                    class_name=self.names.get(cid, f"class{cid}"),
                    confidence=d.confidence * float(p[cid]),
                    detector_confidence=d.confidence,
                )
            )
        return out
