"""Micro-batching of concurrent text requests (inference/batching.py).

Callers that arrive while the model is busy are run together as one batch on the next call;
each still gets exactly its own answer (or its own error), and a lone caller runs at once.
The last test runs the bundled text model: answers in a batch equal answers one by one.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from errors import UnusableInput
from inference.batching import MicroBatcher

TEXT_MODEL = Path(__file__).resolve().parent.parent / "models" / "text"


class SlowSquares:
    """A batch function that takes 20 ms per call, whatever the batch size, and records batches."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, items: list[int]) -> list[int]:
        with self.lock:
            self.batches.append(list(items))
        time.sleep(0.02)
        if any(item < 0 for item in items):
            raise ValueError("negative")
        return [item * item for item in items]


def test_a_lone_caller_runs_at_once_in_a_batch_of_one() -> None:
    work = SlowSquares()
    batcher = MicroBatcher(work)
    started = time.monotonic()
    assert batcher.submit(7) == 49
    assert time.monotonic() - started < 0.2
    assert work.batches == [[7]]


def test_concurrent_callers_share_calls_and_each_gets_its_own_answer() -> None:
    work = SlowSquares()
    batcher = MicroBatcher(work, max_batch=8)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(batcher.submit, range(64)))
    assert answers == [i * i for i in range(64)]
    assert sorted(i for batch in work.batches for i in batch) == list(range(64))
    assert len(work.batches) < 64 / 2  # callers really were batched
    assert max(len(batch) for batch in work.batches) <= 8


def test_one_failing_input_fails_only_its_own_caller() -> None:
    work = SlowSquares()
    batcher = MicroBatcher(work)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(batcher.submit, i) for i in (1, 2, -3, 4, 5, 6, 7, 8)]
    for future, item in zip(futures, (1, 2, -3, 4, 5, 6, 7, 8), strict=True):
        if item < 0:
            with pytest.raises(ValueError, match="negative"):
                future.result()
        else:
            assert future.result() == item * item
    assert batcher.submit(9) == 81  # the batcher is not stuck after a failure


@pytest.mark.skipif(not (TEXT_MODEL / "model.onnx").is_file(), reason="the bundled text model is missing")
def test_the_text_model_answers_the_same_in_a_batch_as_alone() -> None:
    from inference.text import TextRecognizer

    texts = [
        "I can't believe we won the final!",
        "This is disgusting, take it away.",
        "I'm scared of what the doctor will say tomorrow",
        "ok",
        "We lost the house in the fire and I miss it every day. " * 12,  # several windows
        "🎉🎉",
        "The meeting moved to Thursday.",
        "Why would you do that to me?! I trusted you.",
    ] * 3
    recognizer = TextRecognizer(TEXT_MODEL)
    alone = [recognizer.predict(text) for text in texts]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(recognizer.predict, texts))
    for a, b in zip(alone, together, strict=True):
        assert a.label == b.label
        np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
        assert a.details == b.details
    assert recognizer._batcher.items > recognizer._batcher.batches  # some calls were shared
    with pytest.raises(UnusableInput):
        recognizer.predict("\u200b\u200b")  # nothing readable: its own clear error
