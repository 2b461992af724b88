"""A deterministic stand-in for the sentence model, for tests whose behaviour does not depend on
meaning (flow, storage, channels). Usage::

    def test_x(make_app):
        app = make_app()            # uses HashingEmbedder unless real_model=True

Words are hashed into 384 buckets, so equal texts embed equally and different texts differ.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray


class HashingEmbedder:
    model_id = "test/hashing-384"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> NDArray[np.float32]:
        self.calls += 1
        out = np.zeros((len(texts), 384), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int(hashlib.blake2s(word.encode(), digest_size=4).hexdigest(), 16)
                out[i, h % 384] += 1.0
            norm = float(np.linalg.norm(out[i]))
            out[i] = out[i] / norm if norm else out[i]
        return out
