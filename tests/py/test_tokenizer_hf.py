"""Hugging Face tokenizer.json files (Llama-2-style spm BPE, also rewritten with a Metaspace pre-tokenizer, Llama-3,
Qwen3, and GPT-2 built from encoder.json + vocab.bpe) against the `tokenizers` package: identical ids on every corpus line, TinyStories paragraph and fresh
random text, with special tokens parsed (HF's default) and not (HF with encode_special_tokens); BOS handling;
exact decoding (also of invalid UTF-8 for byte-level BPE); and the whole of WikiText-2 test, timed."""
import os
import random
import shutil
import subprocess
import time
import unicodedata

from tokenizers import AddedToken, Tokenizer

from tokenizer_oracle import (SHARED, SQ_BIN, Checker, gpt2_tokenizer_json, llama2_metaspace_json,
                              random_texts, read_corpus, sanitized_binary, tinystories_paragraphs, tokenize_lines,
                              wikitext_lf, work_path)


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
    # the original files, read directly; the oracle is Hugging Face's tokenizer built from the same pair
    ("gpt2 encoder.json", os.path.join(SHARED, "tokenizers/gpt2/encoder.json"),
     {"kind": "byte-bpe", "vocab": "50257", "bos": "-1", "eos": "-1", "adds_bos": "0"}, None),
    ("llama2 Metaspace first", llama2_metaspace_json("first", False),
     {"kind": "spm-bpe", "vocab": "32000", "bos": "1", "eos": "2", "adds_bos": "1"}, None),
    ("llama2 Metaspace always+split", llama2_metaspace_json("always", True),
     {"kind": "spm-bpe", "vocab": "32000", "bos": "1", "eos": "2", "adds_bos": "1"}, None),
]

wiki, wiki_path = wikitext_lf()

for name, path, want_info, extra_bos in cases:
    hf = Tokenizer.from_file(gpt2_tokenizer_json() if path.endswith("encoder.json") else path)
    nfc = hf.normalizer is not None and "NFC" in repr(hf.normalizer)
    texts = [t.decode() for t in valid]
    with_special = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    with_bos = [e.ids for e in hf.encode_batch(texts, add_special_tokens=True)]
    hf.encode_special_tokens = True
    as_text = [e.ids for e in hf.encode_batch(texts, add_special_tokens=False)]
    hf.encode_special_tokens = False

    ours_special = tokenize_lines(path, valid, "--no-bos", "--special")
    ours_text = tokenize_lines(path, valid, "--no-bos")
    ours_bos = tokenize_lines(path, valid, "--special")
    meta = ours_bos.info
    c.expect(meta == want_info, "%s: info %s, expected %s" % (name, meta, want_info))
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
        # (Metaspace adds no prefix to text that starts with a space, so decoding cannot tell it was there)
        metaspace_space = "Metaspace" in name and t[:1] == b" "
        if (meta["kind"] == "byte-bpe" or "▁".encode() not in t) and not metaspace_space:
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
    if not sanitized_binary():  # sanitizer builds are several times slower
        c.expect(cpu < 2.0, "%s: WikiText-2 took %.2f s CPU (limit 2 s)" % (name, cpu))

# added tokens that swallow the whitespace beside them (lstrip / rstrip), in both kinds of tokenizer, parsed as
# special tokens or not, and kept through sq_tokenizer_save_hf
strip_texts = [t.encode() for t in ["a  <|lft|>  b", "x<|rgt|> \n y", " [both] z", "\t\u00a0[both]\u3000q",
                                    "<|lft|>start", "end<|rgt|>", "a [both][both] b", "  <|rgt|>  <|lft|>  "]]
rng = random.Random(seed)
for _ in range(100):
    strip_texts.append("".join(rng.choice(["<|lft|>", "<|rgt|>", "[both]", " ", "  ", "\n", "\t", "x", "yz", "\u3000"])
                               for _ in range(rng.randint(1, 12))).encode())
for base in ["llama2", "llama3"]:
    hf = Tokenizer.from_file(os.path.join(SHARED, "tokenizers", base, "tokenizer.json"))
    hf.add_special_tokens([AddedToken("<|lft|>", lstrip=True, normalized=False),
                           AddedToken("<|rgt|>", rstrip=True, normalized=False)])
    hf.add_tokens([AddedToken("[both]", lstrip=True, rstrip=True, normalized=False)])
    strip_dir = work_path("strip-%s" % base)  # a folder of its own: no tokenizer_config.json beside it
    os.makedirs(strip_dir, exist_ok=True)
    path = os.path.join(strip_dir, "tokenizer.json")
    hf.save(path)
    saved_dir = work_path("strip-%s-saved" % base)
    os.makedirs(saved_dir, exist_ok=True)
    for flags, special in [(("--no-bos", "--special"), False), (("--no-bos",), True)]:
        hf.encode_special_tokens = special
        want = [e.ids for e in hf.encode_batch([t.decode() for t in strip_texts], add_special_tokens=False)]
        got = tokenize_lines(path, strip_texts, *flags, "--save-hf", saved_dir)
        saved = tokenize_lines(os.path.join(saved_dir, "tokenizer.json"), strip_texts, *flags)
        for t, w, (g, _), (sv, _) in zip(strip_texts, want, got, saved):
            c.expect(g == w, "%s lstrip/rstrip %s: %r: %s, HF %s" % (base, flags, t, g, w))
            c.expect(sv == w, "%s lstrip/rstrip %s, saved: %r: %s, HF %s" % (base, flags, t, sv, w))
    shutil.rmtree(saved_dir)
    shutil.rmtree(strip_dir)
print("lstrip/rstrip added tokens: %d texts checked" % len(strip_texts))

os.remove(wiki_path)
c.finish("test_tokenizer_hf")
