"""Hugging Face tokenizer.json files (Llama-2-style spm BPE, Llama-3, Qwen3, and GPT-2 built from encoder.json +
vocab.bpe) against the `tokenizers` package: identical ids on every corpus line, TinyStories paragraph and fresh
random text, with special tokens parsed (HF's default) and not (HF with encode_special_tokens); BOS handling;
exact decoding (also of invalid UTF-8 for byte-level BPE); and the whole of WikiText-2 test, timed."""
import os
import subprocess
import time
import unicodedata

from tokenizers import Tokenizer

from tokenizer_oracle import (SHARED, SQ_BIN, WORK, Checker, gpt2_tokenizer_json, info, random_texts, read_corpus,
                              tinystories_paragraphs, tokenize_lines)


seed = int(time.time())
print("random seed", seed)
valid = read_corpus("corpus.txt") + tinystories_paragraphs(60) + random_texts(seed, 200)
invalid = read_corpus("invalid_utf8.txt")
c = Checker()

# name, tokenizer.json, expected info, BOS our tokenizer adds that HF's template does not
cases = [
    ("llama2", os.path.join(SHARED, "tokenizers/llama2/tokenizer.json"),
     {"kind": "spm-bpe", "vocab": "32000", "bos": "1", "eos": "2", "adds_bos": "1"}, None),
    # this Llama-3 release has no BOS template; its config names <|begin_of_text|>, which Llama-3 expects first
    ("llama3", os.path.join(SHARED, "tokenizers/llama3/tokenizer.json"),
     {"kind": "byte-bpe", "vocab": "128256", "bos": "128000", "eos": "128001", "adds_bos": "1"}, 128000),
    ("qwen3", os.path.join(SHARED, "tokenizers/qwen3/tokenizer.json"),
     {"kind": "byte-bpe", "vocab": "151669", "bos": "-1", "eos": "151645", "adds_bos": "0"}, None),
    ("gpt2", gpt2_tokenizer_json(), {"kind": "byte-bpe", "vocab": "50257", "bos": "-1", "eos": "-1", "adds_bos": "0"},
     None),
]

with open(os.path.join(SHARED, "data/wikitext-2/wiki.test.raw"), "rb") as f:
    wiki = f.read().replace(b"\r\n", b"\n")
wiki_path = os.path.join(WORK, "wiki.test.lf.txt")
with open(wiki_path, "wb") as f:
    f.write(wiki)

for name, path, want_info, extra_bos in cases:
    hf = Tokenizer.from_file(path)
    meta = info(path)
    nfc = hf.normalizer is not None and "NFC" in repr(hf.normalizer)
    c.expect(meta == want_info, "%s: info %s, expected %s" % (name, meta, want_info))
    texts = [t.decode() for t in valid]
    with_special = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    with_bos = [e.ids for e in hf.encode_batch(texts, add_special_tokens=True)]
    hf.encode_special_tokens = True
    as_text = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    hf.encode_special_tokens = False

    ours_special = tokenize_lines(path, valid, "--no-bos", "--special")
    ours_text = tokenize_lines(path, valid, "--no-bos")
    ours_bos = tokenize_lines(path, valid, "--special")
    mismatches = 0
    for t, e_sp, e_tx, e_bos, (ids_sp, _), (ids_tx, dec_tx), (ids_bos, _) in zip(
            valid, with_special, as_text, with_bos, ours_special, ours_text, ours_bos):
        c.expect(ids_sp == e_sp, "%s: %r --special: %s, HF %s" % (name, t, ids_sp, e_sp))
        c.expect(ids_tx == e_tx, "%s: %r: %s, HF (encode_special_tokens) %s" % (name, t, ids_tx, e_tx))
        c.expect(ids_bos == ([extra_bos] if extra_bos is not None else []) + e_bos,
                 "%s: %r with BOS: %s, HF %s" % (name, t, ids_bos, e_bos))
        mismatches += ids_sp != e_sp or ids_tx != e_tx
        # decoding gives the text back (special-token strings encoded as text; control tokens decode to
        # nothing), in NFC for a tokenizer that normalises, and with a literal "▁" read as spm's space symbol
        if meta["kind"] == "byte-bpe" or "▁".encode() not in t:
            want = unicodedata.normalize("NFC", t.decode()).encode() if nfc else t
            c.expect(dec_tx == want, "%s: %r: round trip gave %r" % (name, t, dec_tx))
    print("%s: %d texts, %d differ from Hugging Face" % (name, len(valid), mismatches))

    if meta["kind"] == "byte-bpe":  # raw bytes survive encoding and decoding (NFC leaves these lines alone)
        for t, (ids, dec) in zip(invalid, tokenize_lines(path, invalid, "--no-bos")):
            c.expect(dec == t, "%s: invalid UTF-8 %r: round trip gave %r" % (name, t, dec))

    before = os.times()
    out = subprocess.run([SQ_BIN, "tokenize", "--tokenizer", path, "-f", wiki_path, "--ids", "--no-bos"],
                         capture_output=True, check=True)
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    ids = [int(x) for x in out.stdout.split()]
    ref = hf.encode(wiki.decode(), add_special_tokens=False).ids
    print("%s: WikiText-2 test -> %d tokens in %.2f s CPU (whole process, load included)" % (name, len(ids), cpu))
    c.expect(ids == ref, "%s: WikiText-2 ids differ from Hugging Face (%d vs %d tokens)" % (name, len(ids), len(ref)))
    c.expect(cpu < 2.0, "%s: WikiText-2 took %.2f s CPU (limit 2 s)" % (name, cpu))

c.finish("test_tokenizer_hf")
