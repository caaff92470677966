"""`wolfpack vision ...`: run the parcel detector on images or a camera, and time the pipeline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "vision",
        help="detect parcels in images or a camera stream; time the vision pipeline",
        description="The camera side of a cell: detect parcels (box, polybag, envelope, "
        "irregular) with an ONNX model, read their labels (Code 128, QR, DataMatrix, "
        "PDF417), and measure them when the config has a camera calibration.",
    )
    cmds = parser.add_subparsers(dest="vision_command", metavar="ACTION")
    cmds.required = True

    detect = cmds.add_parser(
        "detect",
        help="detect parcels in images or frames of a source",
        description="Run the detector and label reader on each image (or on frames of "
        "--source) and print what it found; with --out or --annotate-dir, also write an "
        "annotated copy (nothing is written otherwise). With --json, print one JSON line "
        "per image: "
        "each parcel's class, confidence, box corners in px, label format and text, and "
        "size in mm when the config has a calibration.",
        epilog="examples:\n"
        "  wolfpack vision detect belt.jpg --out belt-annotated.jpg\n"
        "  wolfpack vision detect frames/ --json > detections.jsonl\n"
        "  wolfpack vision detect --source /dev/video0 --frames 30 --json\n"
        "  wolfpack vision detect --source sim --frames 5 --out sim.jpg\n"
        "  wolfpack vision detect frames/ --annotate-dir /tmp/annotated\n"
        "  wolfpack vision detect img.png --model yolo11n.onnx --config board.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    detect.add_argument("images", nargs="*", metavar="IMAGE", help="image files or folders")
    detect.add_argument(
        "--source",
        help="a camera index, video file, RTSP URL, GStreamer pipeline, image folder, or "
        "'sim[:SEED]' for the simulator's belt camera",
    )
    detect.add_argument("--frames", type=int, default=1, help="frames to take from --source")
    _common(detect)
    detect.add_argument(
        "--out",
        type=Path,
        help="write the annotated image to this file; with several images, -NNNN is added "
        "before the suffix",
    )
    detect.add_argument(
        "--annotate-dir",
        type=Path,
        metavar="DIR",
        help="write each annotated image to DIR as NAME.annotated.jpg (DIR is created)",
    )
    detect.add_argument(
        "--no-save", action="store_true", help="write no annotated image (the default now)"
    )
    detect.add_argument("--json", action="store_true", help="print one JSON line per image")
    detect.set_defaults(handler=_detect)

    bench = cmds.add_parser(
        "bench",
        help="print the pipeline's per-stage timings on simulated belt frames",
        description="Run the whole pipeline (preprocess, inference, NMS, tracking, label "
        "read) on frames rendered by the simulator (640x480) and print p50/p99 per stage. "
        "bench/vision.py also compares against bare onnxruntime and OpenCV DNN.",
    )
    bench.add_argument("--frames", type=int, default=150, help="frames to time")
    _common(bench)
    bench.set_defaults(handler=_bench)

    from edge.cli.vision_data_cmd import register as register_data  # capture, train, evaluate

    register_data(cmds)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="ONNX model (default: from --config, else shipped)")
    p.add_argument(
        "--classifier",
        metavar="auto|none|FILE",
        help="parcel classifier on each detection's full-resolution crop: 'auto' (the one the "
        "model names: the shipped model's second stage), 'none' (the detector's own "
        "classes), or an ONNX file (default: from --config, else auto)",
    )
    p.add_argument("--config", type=Path, help="board config whose 'vision:' section to use")
    p.add_argument("--conf", type=float, help="minimum confidence (overrides the config)")
    p.add_argument("--threads", type=int, help="inference threads (default: physical cores)")


def _vision_config(args: argparse.Namespace) -> Any:
    from vision.config import VisionConfig

    cfg = VisionConfig()
    if args.config is not None:
        from edge.config import load_board_config

        board = load_board_config(args.config)
        if board.vision is not None:
            cfg = board.vision
    changes: dict[str, Any] = {}
    if args.model is not None:
        changes["model"] = args.model
    if args.classifier is not None:
        changes["classifier"] = (
            args.classifier if args.classifier in ("auto", "none") else Path(args.classifier)
        )
    if args.threads is not None:
        changes["threads"] = args.threads
    if args.conf is not None:
        changes["thresholds"] = cfg.thresholds.model_copy(update={"confidence": args.conf})
    return cfg.model_copy(update=changes) if changes else cfg


def _pipeline(args: argparse.Namespace) -> Any:
    from vision.pipeline import Pipeline

    return Pipeline.from_config(_vision_config(args))


def _sim_source(spec: str, frames: int) -> Any:
    from sim_hardware.camera.belt import BeltCamera
    from vision.sources import IterableSource

    seed = int(spec.split(":", 1)[1]) if ":" in spec else 0
    cam = BeltCamera(seed=seed)
    items = ((f.image, f.encoder_count) for f in cam.frames(frames))
    return IterableSource(items, f"sim:{seed}")


def _detect(args: argparse.Namespace) -> int:
    import itertools

    import cv2

    from edge.config import ConfigError
    from vision.annotate import annotate
    from vision.detector import ModelError
    from vision.sources import ImageFiles, SourceError, open_source

    if bool(args.images) == bool(args.source):
        print("give IMAGE arguments or --source, not both and not neither", file=sys.stderr)
        return EXIT_USAGE
    try:
        cfg = _vision_config(args)
        from vision.pipeline import Pipeline

        pipeline = Pipeline.from_config(cfg)
        if args.images:
            source = ImageFiles(args.images)
        elif args.source.startswith("sim"):
            source = _sim_source(args.source, args.frames)
        else:
            source = open_source(args.source)
    except (ConfigError, ModelError, SourceError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    limit = None if args.images else args.frames
    several = (bool(args.source) and args.frames > 1) or len(getattr(source, "files", [])) > 1
    with source:
        try:
            for frame in itertools.islice(source, limit):
                if args.images:
                    pipeline.reset()  # independent images: nothing to track across them
                # every parcel in the frame gets its label read, not just the frame's share
                result = pipeline.process(frame, label_reads=len(pipeline.tracker.tracks) + 99)
                out_path = None
                if not args.no_save and (args.out is not None or args.annotate_dir is not None):
                    out_path = _out_path(args.out, frame.source or "frame", frame.index, several)
                    if args.out is None:
                        args.annotate_dir.mkdir(parents=True, exist_ok=True)
                        out_path = args.annotate_dir / out_path.name
                    items = [(s.detection, s.label, s.size) for s in result.parcels]
                    cv2.imwrite(str(out_path), annotate(frame.image, items))
                if args.json:
                    print(json.dumps(_frame_json(result, out_path)), flush=True)
                else:
                    _print_human(result, out_path)
        except SourceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    return EXIT_OK


def _out_path(out: Path | None, name: str, index: int, several: bool) -> Path:
    if out is None:
        stem = Path(name).stem if "." in Path(name).name else f"frame-{index:04d}"
        if several and not Path(name).suffix:
            stem = f"{Path(name).name.replace(':', '-')}-{index:04d}"
        return Path(f"{stem}.annotated.jpg")
    if several:
        return out.with_name(f"{out.stem}-{index:04d}{out.suffix or '.jpg'}")
    return out


def _frame_json(result: Any, out_path: Path | None) -> dict[str, Any]:
    f = result.frame
    parcels = []
    for s in result.parcels:
        d = s.detection
        parcels.append(
            {
                "class": d.class_name,
                "confidence": round(d.confidence, 4),
                "detector_confidence": None
                if d.detector_confidence is None
                else round(d.detector_confidence, 4),
                "box": [[round(float(x), 1), round(float(y), 1)] for x, y in d.corners()],
                "label": None
                if s.label is None
                else {"format": s.label.format, "text": s.label.text},
                "size_mm": None
                if s.size is None
                else {"length": round(s.size.length_mm, 1), "width": round(s.size.width_mm, 1)},
            }
        )
    t = result.times
    return {
        "image": f.source,
        "frame": f.index,
        "encoder_count": f.encoder_count,
        "width": f.size[0],
        "height": f.size[1],
        "parcels": parcels,
        "annotated": None if out_path is None else str(out_path),
        "timings_ms": {
            "preprocess": round(t.preprocess, 2),
            "inference": round(t.inference, 2),
            "nms": round(t.nms, 2),
            **{k: round(v, 2) for k, v in t.extra.items()},
        },
    }


def _print_human(result: Any, out_path: Path | None) -> None:
    f = result.frame
    where = f" -> {out_path}" if out_path else ""
    print(f"{f.source or 'frame'} #{f.index}: {len(result.parcels)} parcel(s){where}")
    for s in result.parcels:
        d = s.detection
        x1, y1, x2, y2 = d.box
        line = (
            f"  {d.class_name:9s} {d.confidence:.2f}  box ({x1:.0f},{y1:.0f})-({x2:.0f},{y2:.0f})"
        )
        if s.size is not None:
            line += f"  {s.size.length_mm:.0f} x {s.size.width_mm:.0f} mm"
        line += f"  label {s.label.format} {s.label.text}" if s.label else "  label -"
        print(line)


def _bench(args: argparse.Namespace) -> int:
    from edge.config import ConfigError
    from vision.detector import ModelError
    from vision.timing import summarize

    try:
        pipeline = _pipeline(args)
    except (ConfigError, ModelError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    source = _sim_source("sim:7", args.frames)
    results = [pipeline.process(frame) for frame in source]
    d = pipeline.detector
    print(
        f"model {d.path.name} ({d.layout}, input {d.input_hw[1]}x{d.input_hw[0]}, "
        f"{d.threads} threads), classifier {d.classifier.path.name if d.classifier else 'none'}, "
        f"{len(results)} frames of 640x480"
    )
    print(summarize(results))
    return EXIT_OK
