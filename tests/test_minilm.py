"""The numpy MiniLM gives sentence-transformers' embeddings of all-MiniLM-L6-v2."""

import numpy as np
import pytest

from halt_eval.judges.minilm import MiniLM, model_dir

TEXTS = [
    "Ada Lovelace was an English mathematician.",
    "She was born in London in 1815.",
    "",
    " ",
    "Unsure from Here",
    "Take ibuprofen with food; if you miss a dose, take it as soon as you remember.",
    "Émile Zola était un écrivain français. 日本語のテキスト 🙂",
    # past the model's 256 tokens: truncated the same way
    "The quick brown fox jumps over the lazy dog. " * 60,
    "x",
]


@pytest.fixture(scope="module")
def ours():
    return MiniLM()


def test_embeddings_equal_sentence_transformers(ours):
    from sentence_transformers import SentenceTransformer

    theirs = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
    want = theirs.encode(TEXTS, batch_size=4, normalize_embeddings=True, convert_to_numpy=True)
    got = ours.encode(TEXTS, batch_size=4)
    assert got.shape == want.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-5
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)


def test_batching_and_order_do_not_change_an_embedding(ours):
    one_by_one = np.stack([ours.encode([t])[0] for t in TEXTS])
    batched = ours.encode(TEXTS[::-1], batch_size=3)[::-1]
    assert np.abs(one_by_one - batched).max() < 1e-5
    assert ours.encode([]).shape == (0, 384)


def test_a_folder_that_is_not_a_bert_model_is_refused(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2", "hidden_act": "gelu_new"}')
    with pytest.raises(ValueError, match="not a BERT model"):
        MiniLM(tmp_path)
