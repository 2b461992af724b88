"""bfloat16 where the CPU has it natively must not change what the memory sees (the torch
backend, ``embeddings.backend: torch``; its smoke test too)."""

from __future__ import annotations

import numpy as np
import pytest

from memory.embeddings import SentenceTransformerEmbedder

TEXTS = [
    "I like the new dashboard",
    "Support takes days to reply now and nobody follows up on tickets.",
    "The onboarding was confusing",
    "",
]


@pytest.mark.model
def test_bfloat16_vectors_match_float32(torch_embedder: SentenceTransformerEmbedder) -> None:
    exact = SentenceTransformerEmbedder(precision="float32").encode(TEXTS)
    fast = SentenceTransformerEmbedder(precision="bfloat16").encode(TEXTS)
    assert exact.dtype == fast.dtype == np.float32
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-4)
    assert float(np.min(np.sum(exact * fast, axis=1))) > 0.999
