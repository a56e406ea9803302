"""Compress a text classifier from a CSV of raw texts, then classify new texts as a deployment
would: tokenized by tokenizer.json alone (a lowercase, a regular expression, a word list), run
by the LiteRT interpreter, no compress in the loop.

Run: .venv/bin/python examples/text_classifier.py
It writes examples/out/messages.csv (short messages about four topics), then runs
  compress run --data examples/out/messages.csv --target topic --strategy quantize-int8 --strategy distill
and classifies three new messages with the int8 model.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from ai_edge_litert.interpreter import Interpreter

OUT = Path(__file__).parent / "out"
TOPICS = {
    "billing": "invoice charge refund payment card price bill paid",
    "delivery": "parcel courier shipping late arrived tracking package address",
    "account": "password login email reset username locked profile signup",
    "product": "broken battery screen size colour quality manual warranty",
}
FILLER = ["the", "a", "my", "is", "was", "it", "to", "and", "i", "for", "on", "with", "this", "please",
          "can", "you", "not", "still"]


def make_csv(path: Path, rows: int = 800, seed: int = 0) -> None:
    """Messages of 6 to 16 words: a few topic words among common ones."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(rows):
        topic = list(TOPICS)[i % len(TOPICS)]
        words = [rng.choice(TOPICS[topic].split()) if rng.random() < 0.3 else rng.choice(FILLER)
                 for _ in range(rng.integers(6, 17))]
        records.append((" ".join(words).capitalize() + "?", topic))
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records, columns=["message", "topic"]).to_csv(path, index=False)


def token_ids(tokenizer: dict, text: str) -> np.ndarray:
    """The ids a model takes, from tokenizer.json alone: what any language can reproduce."""
    index = {word: i + tokenizer["first_word_id"] for i, word in enumerate(tokenizer["words"])}
    words = re.findall(tokenizer["token_pattern"], text.lower() if tokenizer["lowercase"] else text)
    ids = [index.get(word, tokenizer["unknown_id"]) for word in words][:tokenizer["length"]]
    return np.array(ids + [tokenizer["padding_id"]] * (tokenizer["length"] - len(ids)), dtype=np.int32)


def main() -> None:
    csv = OUT / "messages.csv"
    make_csv(csv)
    run = OUT / "text-run"
    compress = str(Path(sys.executable).parent / "compress")
    subprocess.run([compress, "run", "--data", str(csv), "--target", "topic", "--strategy", "quantize-int8",
                    "--strategy", "distill", "--epochs", "20", "--out", str(run), "--overwrite"], check=True)
    tokenizer = json.loads((run / "tokenizer.json").read_text())
    classes = json.loads((run / "run.json").read_text())["dataset"]["classes"]
    interpreter = Interpreter(model_path=str(run / "quantize-int8.tflite"))
    interpreter.allocate_tensors()
    given, taken = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    for text in ("My card was charged twice, please refund", "The courier says the parcel arrived",
                 "I cannot reset my password"):
        interpreter.set_tensor(given["index"], token_ids(tokenizer, text)[None, :])
        interpreter.invoke()
        scores = interpreter.get_tensor(taken["index"])[0]
        print(f"{text!r}: {classes[int(np.argmax(scores))]}")


if __name__ == "__main__":
    main()
