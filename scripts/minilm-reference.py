#!/usr/bin/env python3
"""Reference vectors for the minilm embedder's test (crates/embed/tests/minilm.rs).

Run once, with sentence-transformers (and torch) installed, on the model
files the server uses (NOTEGRAPH_DATA_DIR/models/all-MiniLM-L6-v2, or any
directory holding the all-MiniLM-L6-v2 sentence-transformers files):

    python3 scripts/minilm-reference.py MODEL_DIR > crates/embed/tests/fixtures/minilm-reference.json

It embeds a handful of texts the way sentence-transformers does (its
`SentenceTransformer.encode`: max_seq_length 256, mean pooling, unit
length) and prints them with the library versions that made them. The
texts cover a short query, a note-like title and body, punctuation and
accents, an empty text, and texts longer than 128 and than 256 word
pieces (the tokenizer file says 128; sentence-transformers cuts at 256).
"""

import json
import sys

import sentence_transformers
import torch
from sentence_transformers import SentenceTransformer

LONG = " ".join(
    f"Paragraph {i}: the sourdough starter doubled overnight, so the dough rose well in the cold kitchen."
    for i in range(1, 20)
)

TEXTS = [
    "making a loaf at home",
    "Sourdough starter, day 5\nFed it rye flour twice; the bubbles are finally there and it smells sour.",
    "borrow checker errors",
    "Rust lifetimes: why the compiler says `x` does not live long enough",
    "Crème brûlée — naïve café résumé!?",
    "",
    " ".join(LONG.split()[:150]),
    LONG,
]


def main() -> None:
    model = SentenceTransformer(sys.argv[1], device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    vectors = model.encode(TEXTS, normalize_embeddings=False, convert_to_numpy=True)
    pieces = [len(model.tokenizer(text, truncation=False)["input_ids"]) for text in TEXTS]
    json.dump(
        {
            "made_by": f"sentence-transformers {sentence_transformers.__version__}, torch {torch.__version__} "
            "(scripts/minilm-reference.py)",
            "cases": [
                {"text": text, "word_pieces": count, "vector": [round(float(x), 7) for x in vector]}
                for text, count, vector in zip(TEXTS, pieces, vectors)
            ],
        },
        sys.stdout,
        indent=1,
    )
    print()


if __name__ == "__main__":
    main()
