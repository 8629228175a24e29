"""The text network in PyTorch: what training fits and what the ONNX export is checked against.

Serving never imports this module: it runs ``models/text/model.onnx`` (see
:mod:`model_training.export`). Training, evaluation against the framework and the export
itself build the network here from ``config.json``, ``head.json`` and ``model.safetensors``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from inference.labels import NUM_EMOTIONS

WEIGHTS_FILE = "model.safetensors"
HEAD_FILE = "head.json"

Forward = Callable[[np.ndarray, np.ndarray], np.ndarray]


def build_classifier(encoder_config: Any, pooling: str = "mean", dropout: float = 0.1) -> Any:
    """The network: BERT encoder -> attention-masked mean pooling -> dropout -> linear head.

    Mean pooling matches how all-MiniLM-L6-v2 was pre-trained (a sentence embedding), so the
    head starts from a meaningful representation.
    """
    import torch
    from torch import nn
    from transformers import BertModel

    if pooling != "mean":
        raise ValueError(f"unsupported pooling {pooling!r}")

    class MeanPoolClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = BertModel(encoder_config, add_pooling_layer=False)
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(encoder_config.hidden_size, NUM_EMOTIONS)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
            return self.classifier(self.dropout(pooled))

    return MeanPoolClassifier()


def load_text_network(model_dir: str | Path) -> Any:
    """The trained network in eval mode, its float16 weights upcast to float32."""
    import torch
    from safetensors.torch import load_file
    from transformers import BertConfig

    model_dir = Path(model_dir)
    head = json.loads((model_dir / HEAD_FILE).read_text(encoding="utf-8"))
    config = BertConfig.from_pretrained(str(model_dir), local_files_only=True)
    model = build_classifier(config, pooling=head.get("pooling", "mean"))
    state = {k: v.to(torch.float32) for k, v in load_file(str(model_dir / WEIGHTS_FILE)).items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"the text weights do not match config.json (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval()


def quantise_dynamic_int8(model: Any) -> Any:
    """PyTorch dynamic int8 quantisation of every Linear layer (weights int8, activations on the fly)."""
    import torch

    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def torch_forward(model: Any) -> Forward:
    """``(ids, mask) -> logits`` with eager PyTorch, for :class:`inference.text.TextRecognizer`'s ``forward``."""
    import torch

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
        return logits.float().numpy()

    return forward


def framework_forward(model_dir: str | Path, *, int8: bool = False, threads: int = 1) -> Forward:
    """The PyTorch reference for ``model_dir``: float32 (or dynamic int8) eager inference."""
    import torch

    if torch.get_num_threads() > threads:
        torch.set_num_threads(threads)
    model = load_text_network(model_dir)
    return torch_forward(quantise_dynamic_int8(model) if int8 else model)
