"""Regenerates the golden files in this folder from the float64 reference (tests/py/reference.py).

  stories15M.greedy64.txt, stories260K.greedy64.txt: the reference's 64 greedy continuation ids after the
  prompt in ../shared/golden/<model>.tokens.txt (space separated).

Run: python tests/data/reference/regenerate.py  (SQ_SHARED defaults to ../shared beside the repository).
Regenerate only after a deliberate, reviewed change to the reference; test_logits_stories.py checks that the
reference still produces these.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "py"))
import engine_harness as H  # noqa: E402
import reference as R  # noqa: E402

N_GREEDY = 64


def main():
    for name in ["stories15M", "stories260K"]:
        model = R.load_llama2c(os.path.join(H.SQ_SHARED, "models", f"{name}.bin"))
        tokens = H.read_tokens(os.path.join(H.SQ_SHARED, "golden", f"{name}.tokens.txt"))
        ids, margins = R.greedy(model, tokens, N_GREEDY)
        out = os.path.join(HERE, f"{name}.greedy{N_GREEDY}.txt")
        with open(out, "w") as f:
            f.write(" ".join(map(str, ids)) + "\n")
        print(f"{out}: smallest top-1/top-2 gap {min(margins):.4g}")


if __name__ == "__main__":
    main()
