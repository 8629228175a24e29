"""One way to open the served ONNX graphs: ONNX Runtime on the CPU, a fixed thread budget.

Every bundled model (face, speech, text, the fusion stacker) is an ONNX file written at
training time by ``model_training.export``; the serving process needs only ``onnxruntime``
to run them, never the training frameworks, and an ONNX file is data, never code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_session(path: str | Path, *, threads: int = 1) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``path`` with all graph optimisations on.

    ``threads`` bounds the intra-op pool: the web server runs several request threads per
    process, and each session call should not claim every core.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # warnings about unused initializers are not the operator's concern
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
