"""`wolfpack vision capture | train | evaluate`: a site's own data set, and a model fine-tuned
on it (docs/vision-data.md)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def register(cmds: argparse._SubParsersAction) -> None:
    """Add the data set subcommands to ``wolfpack vision``."""
    cap = cmds.add_parser(
        "capture",
        help="keep hard frames of a running node (or of a source) with pre-labels, as COCO",
        description="Keep the frames the model finds hard (a label conflict, a parcel whose "
        "label was not read, a low confidence) and a sampled share of the rest, as JPEG "
        "with the model's detections as pre-labels in COCO (DATA/annotations.json), which "
        "CVAT and Label Studio import and export. With --node, a running node captures "
        "(its config directory, or the folder of its --health-file); with --source, this "
        "command runs the pipeline itself. Disk use is capped (oldest frames dropped, "
        "counted); nothing leaves the board.",
        epilog="examples:\n"
        "  wolfpack vision capture --node /etc/wolfpack --out /var/lib/wolfpack/capture \\\n"
        "      --max-mb 500 --minutes 60\n"
        "  wolfpack vision capture --node /etc/wolfpack --status\n"
        "  wolfpack vision capture --node /etc/wolfpack --stop\n"
        "  wolfpack vision capture --source /dev/video0 --frames 3000 --out capture/\n"
        "  wolfpack vision capture --source sim:3 --frames 200 --out sim-set/ --truth",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = cap.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--node",
        type=Path,
        metavar="DIR",
        help="the running node's directory (where its health.json is)",
    )
    where.add_argument("--source", help="capture here from a camera, file, folder or 'sim[:SEED]'")
    cap.add_argument("--out", type=Path, metavar="DATA", help="the data set directory")
    cap.add_argument("--status", action="store_true", help="print the node's capture status")
    cap.add_argument("--stop", action="store_true", help="end the node's capture")
    cap.add_argument("--max-mb", type=float, default=512.0, help="size cap (default 512)")
    cap.add_argument("--max-images", type=int, default=5000, help="image cap (default 5000)")
    cap.add_argument("--minutes", type=float, help="stop after this long (default: --stop)")
    cap.add_argument(
        "--share",
        type=float,
        default=0.02,
        help="share of ordinary frames also kept (default 0.02)",
    )
    cap.add_argument(
        "--low-confidence",
        type=float,
        default=0.5,
        help="a parcel under this confidence makes its frame hard (default 0.5)",
    )
    cap.add_argument(
        "--min-gap",
        type=int,
        default=5,
        metavar="FRAMES",
        help="at least this many processed frames between two kept (default 5)",
    )
    cap.add_argument("--frames", type=int, default=300, help="with --source: frames to read")
    cap.add_argument(
        "--truth",
        action="store_true",
        help="with --source sim: annotate with the simulator's truth, not the "
        "model's pre-labels (a labelled set for tests and evaluation)",
    )
    _model_args(cap)
    cap.set_defaults(handler=_capture)

    train = cmds.add_parser(
        "train",
        help="fine-tune the parcel classifier on a data set (CPU) and export ONNX",
        description="Fine-tune the last layer of the model's parcel classifier on the "
        "annotated parcels of DATA (after correcting the pre-labels in a labelling tool), "
        "then write OUT.onnx (the detector, naming its new classifier) and "
        "OUT-classifier.onnx beside it. Point vision.model at OUT.onnx and flash the config; "
        "copy both files to the board first. Every 5th image is held out to report "
        "accuracy before and after.",
        epilog="example:\n  wolfpack vision train --data capture/ --out models/site-1.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("--data", type=Path, required=True, help="COCO data set directory")
    train.add_argument(
        "--from",
        dest="from_model",
        type=Path,
        help="detector whose classifier to start from (default: the shipped)",
    )
    train.add_argument("--out", type=Path, required=True, help="output detector .onnx")
    train.add_argument("--steps", type=int, default=300, help="optimiser steps (default 300)")
    train.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    train.add_argument("--json", action="store_true", help="print the result as JSON")
    train.set_defaults(handler=_train)

    ev = cmds.add_parser(
        "evaluate",
        help="print the model card's table for a model on a COCO data set",
        description="mAP@0.5, AP per class, class-agnostic AP, recall, class accuracy, the "
        "confusion at the confidence threshold, and label reads where the set has the text.",
        epilog="example:\n  wolfpack vision evaluate --data capture/ --model models/site-1.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ev.add_argument("--data", type=Path, required=True, help="COCO data set directory")
    _model_args(ev)
    ev.add_argument("--no-labels", action="store_true", help="skip label reads (faster)")
    ev.add_argument("--json", action="store_true", help="print the figures as JSON")
    ev.set_defaults(handler=_evaluate)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="ONNX detector (default: the shipped model)")
    p.add_argument(
        "--classifier",
        metavar="auto|none|FILE",
        default="auto",
        help="classifier stage (default: the one the model names)",
    )
    p.add_argument(
        "--conf",
        type=float,
        help="minimum confidence (default: the model's own, from its metadata: 0.2 for the "
        "shipped model; else 0.3)",
    )


def _err(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_FAILURE


def _classifier(choice: str) -> str | Path | None:
    return None if choice == "none" else ("auto" if choice == "auto" else Path(choice))


# ---- capture ----------------------------------------------------------------------------------
def _request(args: argparse.Namespace) -> Any:
    from edge.node.vision_capture import CaptureRequest
    from vision.dataset.capture import CaptureSettings, StoreLimits

    until = time.time() + args.minutes * 60 if args.minutes else None
    return CaptureRequest(
        args.out.resolve(),
        StoreLimits(int(args.max_mb * 2**20), args.max_images),
        CaptureSettings(args.low_confidence, args.share, min_gap_frames=args.min_gap),
        until,
    )


def _capture(args: argparse.Namespace) -> int:
    try:
        if args.node is not None:
            return _capture_node(args)
        if args.out is None:
            return _err("capture --source needs --out DATA")
        return _capture_here(args)
    except ValueError as exc:  # settings out of range, a data set that cannot be continued
        return _err(str(exc))


def _capture_node(args: argparse.Namespace) -> int:
    from edge.node.vision_capture import request_path
    from vision.dataset.capture import STATUS

    node = args.node
    if not node.is_dir():
        return _err(f"{node}: no such directory (the node's config directory)")
    req = request_path(node)
    if args.stop:
        if not req.exists():
            print(f"{node}: no capture running")
            return EXIT_OK
        req.unlink()
        print(f"{node}: capture stopped (the node flushes the annotations within a second)")
        return EXIT_OK
    if args.status:
        if not req.exists():
            print(f"{node}: no capture requested")
            return EXIT_OK
        try:
            raw = json.loads(req.read_text())
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            return _err(f"{req}: unreadable capture request ({exc}); --stop removes it")
        status = Path(raw.get("out", "")) / STATUS
        until = raw.get("until")
        when = time.strftime("%H:%M:%S", time.localtime(until)) if until else "--stop"
        print(f"{node}: capturing into {raw.get('out')} (until {when})")
        print(status.read_text().strip() if status.is_file() else "no frame kept yet")
        return EXIT_OK
    if args.out is None:
        return _err("capture --node needs --out DATA (or --status / --stop)")
    request = _request(args)
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = req.with_name(f".{req.name}.tmp")
    tmp.write_text(json.dumps(request.to_json()) + "\n")
    tmp.replace(req)
    limit = f", for {args.minutes:g} min" if args.minutes else ", until --stop"
    print(
        f"{node}: the node captures into {request.out} (at most {args.max_mb:g} MB, "
        f"{args.max_images} images{limit}); see --status"
    )
    return EXIT_OK


def _capture_here(args: argparse.Namespace) -> int:
    from edge.node.vision_capture import Capture, conflicted_tracks, facts
    from vision.dataset.coco import Annotation
    from vision.detector import Detector, DetectorSettings
    from vision.frames import Frame
    from vision.pipeline import Pipeline

    detector = Detector(
        args.model or _default_model(),
        settings=DetectorSettings(args.conf),
        classifier=_classifier(args.classifier),
    )
    pipeline = Pipeline(detector)
    names = tuple(detector.names[i] for i in sorted(detector.names))
    capture = Capture(_request(args), names)
    truths: dict[int, Any] = {}
    if args.source.startswith("sim"):
        from sim_hardware.camera.belt import BeltCamera

        # sim[:SEED[:FPS]]: fewer frames a second than the camera's 30 show more parcels
        # for the same rendering time (the default 10)
        parts = args.source.split(":")
        seed = int(parts[1]) if len(parts) > 1 and parts[1] else 0
        fps = float(parts[2]) if len(parts) > 2 else 10.0
        cam = BeltCamera(seed=seed, fps=fps)

        def frames() -> Any:
            for i, f in enumerate(cam.frames(args.frames)):
                truths[i] = f.parcels
                yield Frame(f.image, f.time_s, i, f.encoder_count, f"sim:{seed}")
    else:
        if args.truth:
            return _err("--truth needs a 'sim' source (only the simulator knows the truth)")
        from vision.sources import open_source

        source = open_source(args.source)

        def frames() -> Any:
            for k, f in enumerate(source):
                if k >= args.frames:
                    break
                yield f

    kept = 0
    for frame in frames():
        result = pipeline.process(frame)
        if args.truth:
            reason = capture.policy.decide(frame.index, facts(result, conflicted_tracks(pipeline)))
            if reason is not None:
                import cv2

                anns = [_truth_annotation(p, Annotation) for p in truths.pop(frame.index)]
                ok, jpeg = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
                h, w = frame.image.shape[:2]
                if ok and capture.store.save(
                    jpeg.tobytes(),
                    w,
                    h,
                    anns,
                    {"reason": reason, "frame": frame.index, "truth": "simulator"},
                ):
                    kept += 1
            truths.pop(frame.index, None)
        elif capture.observe(result, conflicted_tracks(pipeline)) is not None:
            kept += 1
    capture.close()
    st = capture.store
    print(
        f"{args.out}: kept {kept} frames ({', '.join(f'{k} {v}' for k, v in st.by_reason.items() if v)}); "  # noqa: E501
        f"{st.images} images, {st.bytes / 2**20:.1f} MB in the set, {st.counts['dropped']} "
        f"dropped by the cap, {st.counts['failed']} failed"
    )
    return EXIT_OK


def _truth_annotation(p: Any, annotation: Any) -> Any:
    from vision.detections import OrientedBox

    if p.visible_fraction > 0.98:
        corners = OrientedBox(p.centre[0], p.centre[1], *p.size_px, p.angle_deg).corners()
    else:  # cut by the frame's edge or hidden in part: the visible box
        x1, y1, x2, y2 = p.box
        corners = [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]
    return annotation(
        p.cls,
        tuple((float(x), float(y)) for x, y in corners),
        None,
        p.label_text if p.label_legible else None,
        tuple(float(v) for v in p.box),
    )


def _default_model() -> Path:
    from vision.config import DEFAULT_MODEL

    return Path(DEFAULT_MODEL)


# ---- train ------------------------------------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    from vision.dataset.coco import DatasetError, read_coco
    from vision.finetune.head import ClassifierHead, FinetuneError, classifier_of

    if args.out.suffix != ".onnx":
        return _err(f"{args.out}: the output must be an .onnx file")
    start = time.perf_counter()
    try:
        ds = read_coco(args.data)
        model = args.from_model or _default_model()
        head = ClassifierHead(classifier_of(model))
        data = head.collect(ds)
        result = head.train(data, steps=args.steps, lr=args.lr)
        provenance = {
            "data": str(args.data.resolve()),
            "images": len(ds.samples),
            "crops": result.samples,
            "steps": args.steps,
            "lr": args.lr,
            "from": str(model),
            "per_class": result.per_class,
        }
        out = head.export(model, args.out, provenance)
    except (DatasetError, FinetuneError, OSError) as exc:
        return _err(str(exc))
    took = time.perf_counter() - start
    if args.json:
        print(json.dumps({"out": str(out), "seconds": round(took, 2), **result.__dict__}))
        return EXIT_OK

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}%"

    print(
        f"trained on {result.samples} crops of {len(ds.samples)} images "
        f"({', '.join(f'{k} {v}' for k, v in result.per_class.items())}), {result.steps} "
        f"steps, {took:.1f} s"
    )
    print(
        f"accuracy on the training crops: {pct(result.train_accuracy_before)} -> "
        f"{pct(result.train_accuracy_after)}; on {result.val_samples} held-out crops: "
        f"{pct(result.val_accuracy_before)} -> {pct(result.val_accuracy_after)}"
    )
    print(f"wrote {out} and {out.with_name(out.stem + '-classifier.onnx')}")
    print(
        f"next: wolfpack vision evaluate --data DATA --model {out}; then copy both files to "
        "the board and flash a config with vision.model set to the detector's path"
    )
    return EXIT_OK


# ---- evaluate ---------------------------------------------------------------------------------
def _evaluate(args: argparse.Namespace) -> int:
    from vision.dataset.coco import DatasetError, read_coco
    from vision.finetune.evaluate import evaluate_dataset, report

    try:
        ds = read_coco(args.data)
        r = evaluate_dataset(
            ds,
            args.model or _default_model(),
            _classifier(args.classifier),
            args.conf,
            read_labels=not args.no_labels,
        )
    except (DatasetError, ValueError, OSError, RuntimeError) as exc:  # model and file errors
        return _err(str(exc))
    print(json.dumps(r) if args.json else report(r))
    return EXIT_OK
