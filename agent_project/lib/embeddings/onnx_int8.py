"""all-MiniLM-L6-v2 exported once to ONNX and quantised to int8 (per channel, MatMul only:
MEASURED.md found default dynamic quantisation lost quality), run with onnxruntime; ~2x
faster on CPU than torch. Part of the optional ``layan[torch]`` extra (the export needs torch
and transformers; the exported file is reused afterwards)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from agent_project.lib.embeddings.base import BaseEmbedder, EmbeddingError
from agent_project.lib.embeddings import families
from agent_project.lib.embeddings.sbert import MINILM_NAME, TORCH_MISSING, default_local_model_path, is_minilm


class OnnxEmbedder(BaseEmbedder):
    """all-MiniLM-L6-v2 through onnxruntime, int8. The export (torch.onnx, legacy
    exporter) and quantisation happen once per machine into ``cache_dir``; the
    files are written under a temporary name and renamed, so concurrent workers
    never read a half-written model. Pooling and normalisation are done here,
    as sentence-transformers does them (mean over the attention mask, L2)."""

    batch_size = 32
    max_length = 256
    runs_locally = True

    def __init__(self, model_dir: str, dimensions: int, cache_dir: str, threads: int = 0):
        super().__init__()
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbeddingError(TORCH_MISSING.format(what="EMBEDDING_PROVIDER=onnx")) from exc

        named = model_dir
        model_dir = default_local_model_path() if is_minilm(model_dir) else model_dir
        path = Path(cache_dir) / f"{Path(model_dir).name}-{_dir_digest(model_dir)}-int8.onnx"
        if not path.exists():
            try:
                _export_int8(model_dir, path)
            except ImportError as exc:  # the export needs torch; an exported file is used without it
                raise EmbeddingError(TORCH_MISSING.format(what="exporting the ONNX model")) from exc
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle intra-op threads otherwise spin on the cores between calls, taking CPU from
        # the request's or the import's own database work (as numpy's BLAS threads did).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(Path(model_dir) / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.no_padding()  # padded per batch below, after sorting by length
        self.pad_id = self.tokenizer.token_to_id("[PAD]") or 0
        got = self.session.get_outputs()[0].shape[-1]
        if got != dimensions:
            raise EmbeddingError(f"model {model_dir} makes {got}-dim vectors but EMBEDDING_DIMENSIONS={dimensions}")
        self.name = f"{MINILM_NAME if is_minilm(named) else 'local:' + named}:onnx-int8"
        self.dimensions = dimensions

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        """Texts are run in batches of similar length (as sentence-transformers does): a batch is
        padded to its longest text, and unsorted batches of passages spent much of their time on
        padding (FacQA chunks, batches of 64 in file order: 41-47 chunks/s against 52-55 in
        batches of 16). Masked padding does not change a text's vector."""
        encodings = self.tokenizer.encode_batch(families.with_prefix(texts, kind, self.family))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self.dimensions), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            width = max(len(encodings[i].ids) for i in rows)
            ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for row, i in enumerate(rows):
                ids[row, :len(encodings[i].ids)] = encodings[i].ids
                mask[row, :len(encodings[i].ids)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})[0]
            weights = mask[..., None].astype(np.float32)
            out[rows] = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return out


def _dir_digest(model_dir: str) -> str:
    # Another model in the same folder name must not reuse a stale export.
    weights = Path(model_dir) / "model.safetensors"
    stat = weights.stat() if weights.exists() else Path(model_dir).stat()
    return hashlib.blake2b(f"{stat.st_size}:{int(stat.st_mtime)}".encode(), digest_size=4).hexdigest()


def _export_int8(model_dir: str, target: Path) -> None:
    import os
    import tempfile
    import warnings

    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    bert = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()

    class Encoder(torch.nn.Module):  # keyword arguments: BertModel's positional order changes between versions
        def __init__(self):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = Encoder().eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    sample = tokenizer(["an example sentence", "another one"], return_tensors="pt", padding=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        int8 = Path(tmp) / "model-int8.onnx"
        axes = {0: "batch", 1: "sequence"}
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about shape checks that are constant for BERT
            torch.onnx.export(
                model, (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]), str(fp32),
                input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                              "last_hidden_state": axes},
                opset_version=17, dynamo=False,
            )
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.WARNING)  # the quantiser logs a line per tensor at INFO on the root logger
        try:
            quantize_dynamic(str(fp32), str(int8), per_channel=True, op_types_to_quantize=["MatMul"],
                             weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        os.replace(int8, target)
