"""sq_tokenizer_save_hf round trip: every tokenizer (SentencePiece tokenizer.model and tokenizer.bin, the Llama-2,
Llama-3 and Qwen3 tokenizer.json files, GPT-2) is written as tokenizer.json + tokenizer_config.json; squeeze
reloads it and gives the same ids, BOS/EOS and decoding as the original, and Hugging Face's tokenizers loads
it and agrees -- for the SentencePiece model that also checks the merges derived from piece scores against
sentencepiece itself."""
import os
import subprocess
import time

import sentencepiece as spm
from tokenizers import Tokenizer

from tokenizer_oracle import (SHARED, SQ_BIN, WORK, Checker, gpt2_tokenizer_json, info, random_texts, read_corpus,
                              tinystories_paragraphs, tokenize_lines)

seed = int(time.time())
print("random seed", seed)
valid = read_corpus("corpus.txt") + tinystories_paragraphs(30) + random_texts(seed, 100)
invalid = read_corpus("invalid_utf8.txt")
c = Checker()
sp = spm.SentencePieceProcessor(model_file=os.path.join(SHARED, "models/tokenizer.model"))

sources = {
    "tokenizer.model": os.path.join(SHARED, "models/tokenizer.model"),
    "tokenizer.bin": os.path.join(SHARED, "models/tokenizer.bin"),
    "llama2": os.path.join(SHARED, "tokenizers/llama2/tokenizer.json"),
    "llama3": os.path.join(SHARED, "tokenizers/llama3/tokenizer.json"),
    "qwen3": os.path.join(SHARED, "tokenizers/qwen3/tokenizer.json"),
    "gpt2": gpt2_tokenizer_json(),
}

for name, src in sources.items():
    out_dir = os.path.join(WORK, "save_hf", name)
    os.makedirs(out_dir, exist_ok=True)
    subprocess.run([SQ_BIN, "tokenize", "--tokenizer", src, "--save-hf", out_dir], check=True)
    saved = os.path.join(out_dir, "tokenizer.json")
    c.expect(info(saved) == info(src), "%s: reloaded info %s, original %s" % (name, info(saved), info(src)))
    for flags in [("--special",), (), ("--no-bos",)]:
        a = tokenize_lines(src, valid + invalid, *flags)
        b = tokenize_lines(saved, valid + invalid, *flags)
        diff = sum(x != y for x, y in zip(a, b))
        c.expect(diff == 0, "%s %s: %d of %d texts encode or decode differently after saving" %
                 (name, flags, diff, len(a)))
    # Hugging Face reads the written file as the same tokenizer (special tokens parsed, its BOS template)
    hf = Tokenizer.from_file(saved)
    ours = tokenize_lines(saved, valid, "--special")
    hf_ids = [e.ids for e in hf.encode_batch([t.decode() for t in valid])]
    diff = [(t, o[0], h) for t, o, h in zip(valid, ours, hf_ids) if o[0] != h]
    for t, o, h in diff[:3]:
        print("  %s: %r: squeeze %s, HF %s" % (name, t, o, h))
    c.expect(not diff, "%s: Hugging Face disagrees on %d of %d texts" % (name, len(diff), len(valid)))
    if name.startswith("tokenizer."):  # merges derived from scores, checked against sentencepiece itself
        hf.encode_special_tokens = True
        hf_plain = [e.ids for e in hf.encode_batch([t.decode() for t in valid], add_special_tokens=False)]
        diff = sum(h != sp.encode(t) for t, h in zip(valid, hf_plain))
        c.expect(diff == 0, "%s: HF on the saved file differs from sentencepiece on %d texts" % (name, diff))
    print("%s: saved to %s and checked" % (name, out_dir))

c.finish("test_tokenizer_save_hf")
