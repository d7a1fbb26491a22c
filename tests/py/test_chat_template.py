"""Chat templates rendered by `squeeze chat-template` against Python's jinja2 set up as Hugging Face's
apply_chat_template sets it up (transformers/utils/chat_template_utils.py, _compile_jinja_template and
render_jinja_template): an ImmutableSandboxedEnvironment with trim_blocks and lstrip_blocks and the loopcontrols
and {% generation %} extensions, tojson as json.dumps(ensure_ascii=False, ...), raise_exception, strftime_now and
namespace globals; messages with None-valued keys dropped; tools and documents None unless given; the special
tokens as variables. Every render must be byte-identical, and where jinja2 raises, squeeze must fail too (with
the template's own message for raise_exception).

Templates: the real ones of ../shared/tokenizers (Llama 3, Qwen3), read by squeeze from tokenizer_config.json;
SmolLM2-135M-Instruct's and Qwen2.5-Coder-0.5B-Instruct's from their GGUF files (tokenizer.chat_template), and
Gemma-3-270M's GGUF, which has none (the plain fallback); these files come from scripts/get-gguf-models.sh and
are skipped with a message when absent. Then feature templates (tests/data/chat/*.jinja) covering loops,
filters, tojson, string methods and operators, tests, namespaces, macros and whitespace control. Conversations
are drawn afresh each run (the seed is printed): system or not, one to many turns, empty, padded, multi-line
and unicode content, tool calls and tool results, reasoning, tools and enable_thinking variables, with and
without the generation prompt."""
import datetime
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import time

import gguf
import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

from checks import check, failures

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("SQ_SHARED", os.path.join(HERE, "../../../shared"))
SQ_BIN = os.environ.get("SQ_BIN", "squeeze")
TEST_DATA = os.environ.get("SQ_TEST_DATA", os.path.join(HERE, "../data"))
MODELS = os.environ.get("SQ_MODELS", os.path.join(HERE, "../../models"))
WORK = os.environ.get("SQ_WORK", "/tmp")


# ---------------------------------------------------------------- the oracle: jinja2 as transformers uses it

class GenerationTracker(Extension):
    """transformers' AssistantTracker without the tracking: {% generation %}...{% endgeneration %} renders its
    body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


class TemplateNamespace(jinja2.utils.Namespace):
    def __init__(*args, **kwargs):
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError("underscore-prefixed namespace attribute")


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def hf_environment():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTracker, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
    env.globals["dict"] = dict
    env.globals["namespace"] = TemplateNamespace
    return env


ENV = hf_environment()
compiled = {}


def oracle(source, case, specials):
    """('text', rendered) or ('error', message) as apply_chat_template would give them."""
    try:
        if source not in compiled:
            compiled[source] = ENV.from_string(source)
        template = compiled[source]
    except Exception as e:  # a template jinja2 cannot compile
        return "error", "compile: %s" % e
    messages = [{k: v for k, v in m.items() if v is not None} for m in case["messages"]]
    variables = dict(specials)
    variables.update(case.get("vars", {}))
    variables.setdefault("tools", None)
    variables.setdefault("documents", None)
    try:
        return "text", template.render(messages=messages, add_generation_prompt=case["add_generation_prompt"],
                                       **variables)
    except Exception as e:
        return "error", str(e)


def squeeze(args, cases):
    path = os.path.join(WORK, "chat-cases.%d.json" % os.getpid())
    wire = [{"messages_json": json.dumps(c["messages"], ensure_ascii=False),
             "add_generation_prompt": c["add_generation_prompt"],
             **({"vars_json": json.dumps(c["vars"], ensure_ascii=False)} if "vars" in c else {})} for c in cases]
    with open(path, "w") as f:
        json.dump(wire, f, ensure_ascii=False)
    p = subprocess.run([SQ_BIN, "chat-template", *args, "--cases", path], capture_output=True)
    os.unlink(path)
    if p.returncode != 0:
        return None, p.stderr.decode(errors="replace")
    return json.loads(p.stdout), None


def compare(name, args, source, specials, cases):
    results, err = squeeze(args, cases)
    check(results is not None and len(results) == len(cases),
          "%s: squeeze rendered all %d cases%s" % (name, len(cases), "" if results else ": " + str(err)))
    if results is None:
        return
    same = errors = 0
    for k, (case, got) in enumerate(zip(cases, results)):
        kind, want = oracle(source, case, specials)
        if kind == "text":
            ok = got.get("text") == want
            if not ok:
                text = got.get("text", "")
                at = next((i for i, (a, b) in enumerate(zip(want, text)) if a != b), min(len(want), len(text)))
                print("  case %d: %s\n  first difference at %d\n  jinja2:  %r\n  squeeze: %r" %
                      (k, json.dumps(case, ensure_ascii=False)[:300], at, want[max(0, at - 80):at + 80],
                       got if "error" in got else text[max(0, at - 80):at + 80]))
                check(False, "%s: case %d renders as jinja2 renders it" % (name, k))
                return
            same += 1
        else:
            if "error" not in got:
                print("  case %d: jinja2 fails (%s) but squeeze renders %r" % (k, want, got.get("text", "")[:200]))
                check(False, "%s: case %d fails as in jinja2" % (name, k))
                return
            if "raise_exception" in source and want and want in source and want not in got["error"]:
                check(False, "%s: case %d carries the template's message %r (got %r)" % (name, k, want, got["error"]))
                return
            errors += 1
    check(True, "%s: %d renders identical to jinja2's, %d failing as in jinja2" % (name, same, errors))


# ---------------------------------------------------------------- conversations

TEXTS = ["Hello", "", "  padded both sides  ", "multi\nline\n\ntext\n", "unicode: héllo wörld 你好 🙂 👩‍👩‍👧",
         "\u00a0nbsp and ideographic space\u3000", "quotes ' \" and \\ backslashes", "{{ not a tag }} {% neither %}",
         "tabs\tand\r\nCRLF", "Tell me a joke?", "ß ǅ İ ﬁ Ω", "<think>\nlet me think\n</think>\n\nThe answer is 4.",
         "<tool_response>{\"ok\": true}</tool_response>", "x" * 300, "trailing newline\n", "!"]

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city — in °C",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "The city, e.g. Zürich"},
        "days": {"type": "integer", "minimum": 1, "maximum": 14},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
        "threshold": {"type": "number", "default": 0.5}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "noop", "description": "", "parameters": {
        "type": "object", "properties": {}}}}]


def tool_call(rng):
    args = {"city": rng.choice(["Paris", "Zürich", "東京"]), "days": rng.randint(1, 7)}
    if rng.random() < 0.3:
        args["threshold"] = rng.choice([0.25, 1.0, 2.5e-7])
    call = {"name": "get_weather", "arguments": args if rng.random() < 0.7 else json.dumps(args)}
    return {"type": "function", "id": "call_%d" % rng.randint(0, 999), "function": call} if rng.random() < 0.8 \
        else call


def conversation(rng, tools_ok, reasoning_ok):
    msgs = []
    if rng.random() < 0.5:
        msgs.append({"role": "system", "content": rng.choice(TEXTS)})
    for turn in range(rng.choice([1, 1, 2, 3, 5])):
        msgs.append({"role": "user", "content": rng.choice(TEXTS)})
        if tools_ok and rng.random() < 0.3:
            msgs.append({"role": "assistant", "content": rng.choice(["", "", "Let me check.", "Let me check.", "", None]),
                         "tool_calls": [tool_call(rng) for _ in range(rng.choice([1, 2]))]})
            for _ in range(rng.choice([1, 2])):
                msgs.append({"role": "tool", "content": rng.choice(['{"temp": 21.5}', "sunny", ""])})
        msg = {"role": "assistant", "content": rng.choice(TEXTS)}
        if reasoning_ok and rng.random() < 0.3:
            msg["reasoning_content"] = rng.choice(["I should answer.", "\nstep 1\nstep 2\n"])
        msgs.append(msg)
    if rng.random() < 0.7:
        msgs.pop()  # end on a user turn, the usual prompt
    return msgs


def cases_for(rng, n, tools_ok=False, reasoning_ok=False, extra_vars=()):
    cases = []
    for k in range(n):
        case = {"messages": conversation(rng, tools_ok, reasoning_ok), "add_generation_prompt": k % 2 == 0}
        variables = {}
        if tools_ok and rng.random() < 0.3:
            variables["tools"] = TOOLS
        for name, values in extra_vars:
            if rng.random() < 0.5:
                variables[name] = rng.choice(values)
        if variables:
            case["vars"] = variables
        cases.append(case)
    # fixed corner cases: no messages, one empty user message
    cases.append({"messages": [], "add_generation_prompt": True})
    cases.append({"messages": [{"role": "user", "content": ""}], "add_generation_prompt": False})
    return cases


seed = int(time.time())
print("random seed", seed)
rng = random.Random(seed)


def template_text(squeeze_args):
    p = subprocess.run([SQ_BIN, "chat-template", *squeeze_args, "--print-template"], capture_output=True)
    return p.returncode, p.stdout.decode()[:-1], p.stderr.decode()


# ---------------------------------------------------------------- the real templates

for name in ["llama3", "qwen3"]:
    path = os.path.join(SHARED, "tokenizers", name, "tokenizer.json")
    with open(os.path.join(SHARED, "tokenizers", name, "tokenizer_config.json")) as f:
        config = json.load(f)
    source = config["chat_template"]
    rc, text, _ = template_text(["--tokenizer", path])
    check(rc == 0 and text == source, "%s: squeeze reads the chat_template of tokenizer_config.json" % name)
    specials = {k: config[k] for k in ["bos_token", "eos_token"] if isinstance(config.get(k), str)}
    extra = [("enable_thinking", [True, False])] if name == "qwen3" else []
    compare(name, ["--tokenizer", path], source, specials,
            cases_for(rng, 120, tools_ok=name == "qwen3", reasoning_ok=name == "qwen3", extra_vars=extra))


def gguf_facts(path):
    """The chat template and the BOS / EOS pieces of a GGUF file, read by a plain reader of the metadata (ggml's
    docs/gguf.md; the gguf package reads every field of these large vocabularies far more slowly)."""
    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
    with open(path, "rb") as f:
        data = f.read(64 << 20)  # the metadata sits at the front
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, data, pos)[0]
        pos += struct.calcsize(fmt)
        return v

    def string():
        nonlocal pos
        n = take("<Q")
        pos += n
        return data[pos - n:pos].decode("utf-8", errors="surrogateescape")

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("<I"), take("<Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert data[:4] == b"GGUF"
    pos = 8
    _, n_kv = take("<Q"), take("<Q")
    kv = {}
    for _ in range(n_kv):
        key = string()
        kv[key] = value(take("<I"))
    tokens = kv["tokenizer.ggml.tokens"]
    specials = {var: tokens[kv[key]] for key, var in [("tokenizer.ggml.bos_token_id", "bos_token"),
                                                      ("tokenizer.ggml.eos_token_id", "eos_token")] if key in kv}
    return kv.get("tokenizer.chat_template"), specials


GGUF_MODELS = [("SmolLM2-135M-Instruct", "SmolLM2-135M-Instruct.Q4_1.gguf", False),
               ("Qwen2.5-Coder-0.5B-Instruct", "Qwen2.5-Coder-0.5B-Instruct.gguf", True),
               ("Gemma-3-270M", "gemma-3-270m-q4_k_m.gguf", False)]
for name, file, tools_ok in GGUF_MODELS:
    path = os.path.join(MODELS, file)
    if not os.path.exists(path):
        print("skip %s: %s is not here (scripts/get-gguf-models.sh fetches it)" % (name, path))
        continue
    source, specials = gguf_facts(path)
    rc, text, err = template_text(["--tokenizer", path])
    if source is None:  # Gemma-3-270M (the base model) ships no template: the plain fallback renders
        check(rc == 0 and "fallback" in err, "%s: no template in the GGUF, squeeze says it uses the fallback" % name)
        source = text
    else:
        check(rc == 0 and text == source, "%s: squeeze reads tokenizer.chat_template from the GGUF" % name)
    compare(name, ["--tokenizer", path], source, specials, cases_for(rng, 80, tools_ok=tools_ok))

# ---------------------------------------------------------------- where templates come from, and writers keep them

def scratch(name):
    d = os.path.join(WORK, "%s.%d" % (name, os.getpid()))
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


qwen3_json = os.path.join(SHARED, "tokenizers/qwen3/tokenizer.json")
with open(os.path.join(SHARED, "tokenizers/qwen3/tokenizer_config.json")) as f:
    qwen3_template = json.load(f)["chat_template"]
saved = scratch("chat-save-hf")
p = subprocess.run([SQ_BIN, "tokenize", "--tokenizer", qwen3_json, "--save-hf", saved, "--info"], capture_output=True)
rc, text, _ = template_text(["--tokenizer", os.path.join(saved, "tokenizer.json")])
check(p.returncode == 0 and rc == 0 and text == qwen3_template,
      "tokenizer_config.json written by squeeze keeps the chat template")

# chat_template.jinja beside tokenizer.json (newer transformers), and the named-list form of tokenizer_config.json
alone = scratch("chat-jinja-file")
os.symlink(qwen3_json, os.path.join(alone, "tokenizer.json"))
with open(os.path.join(alone, "chat_template.jinja"), "w") as f:
    f.write("{{ 'from the file ' ~ messages | length }}\n")
rc, text, _ = template_text(["--tokenizer", os.path.join(alone, "tokenizer.json")])
check(rc == 0 and text == "{{ 'from the file ' ~ messages | length }}\n", "chat_template.jinja is read")
with open(os.path.join(alone, "tokenizer_config.json"), "w") as f:
    json.dump({"chat_template": [{"name": "tool_use", "template": "tools"}, {"name": "default", "template": "dflt"}]},
              f)
rc, text, _ = template_text(["--tokenizer", os.path.join(alone, "tokenizer.json")])
check(rc == 0 and text == "dflt", "the 'default' one of tokenizer_config.json's named templates is used")

# a GGUF holding only a vocabulary and a template (written by the gguf package)
tiny = os.path.join(scratch("chat-gguf"), "vocab.gguf")
gw = gguf.GGUFWriter(tiny, "llama")
gw.add_tokenizer_model("llama")
gw.add_token_list(["<unk>", "<s>", "</s>", "\u2581a", "b"])
gw.add_token_scores([0.0, 0.0, 0.0, -1.0, -2.0])
gw.add_token_types([2, 3, 3, 1, 1])
gw.add_bos_token_id(1)
gw.add_eos_token_id(2)
gw.add_chat_template("{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}{{ eos_token }}{% endfor %}ü")
gw.write_header_to_file()
gw.write_kv_data_to_file()
gw.write_tensors_to_file()
gw.close()
results, err = squeeze(["--tokenizer", tiny], [{"messages": [{"role": "user", "content": "hi"}],
                                                "add_generation_prompt": False}])
check(results == [{"text": "<s>[user] hi</s>ü"}], "a vocabulary-only GGUF gives its template, BOS and EOS (%s)" %
      (results or err))

smollm = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
if os.path.exists(smollm):
    converted = os.path.join(scratch("chat-convert"), "smollm.gguf")
    p = subprocess.run([SQ_BIN, "convert", "-m", smollm, "-o", converted, "--to", "gguf"], capture_output=True)
    source, _ = gguf_facts(smollm)
    rc, text, _ = template_text(["-m", converted])
    check(p.returncode == 0 and rc == 0 and text == source, "squeeze convert to GGUF keeps the chat template")
    os.unlink(converted)

# ---------------------------------------------------------------- feature templates and variables

feature_dir = os.path.join(TEST_DATA, "chat")
for file in sorted(os.listdir(feature_dir)):
    if not file.endswith(".jinja"):
        continue
    path = os.path.join(feature_dir, file)
    with open(path, encoding="utf-8") as f:
        source = f.read()
    cases = cases_for(rng, 25, tools_ok=True, reasoning_ok=True)
    for case in cases:
        case.setdefault("vars", {}).setdefault("tools", TOOLS)
    compare(file, ["--template", path, "--bos", "<s>", "--eos", "</s>"], source,
            {"bos_token": "<s>", "eos_token": "</s>"}, cases)

# templates jinja2 refuses or fails on: squeeze must fail as well
FAILING = {
    "raise": "{% if messages | length > 1 %}{{ raise_exception('Only one message, please') }}{% endif %}ok",
    "alternation": "{% for m in messages %}{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}"
                   "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
                   "{% endif %}{{ m.content }}{% endfor %}",
    "undefined attribute of undefined": "{{ messages[0].missing.deeper }}",
    "str plus int": "{{ 'a' + 1 }}",
    "undefined plus str": "{{ nothing + 'x' }}",
    "division by zero": "{{ 1 // 0 }}",
    "unknown filter": "{{ 'x' | no_such_filter }}",
    "unknown test": "{{ 'x' is no_such_test }}",
    "syntax": "{% if x %}unclosed",
    "unknown tag": "{% frobnicate %}",
    "modify list": "{% set l = [1] %}{{ l.append(2) }}",
    "underscore namespace": "{% set ns = namespace(_x=1) %}",
    "tojson undefined": "{{ nothing | tojson }}",
    "big range": "{% for i in range(100001) %}{% endfor %}",
    "bad unpack": "{% for a, b in [[1, 2, 3]] %}{% endfor %}",
    "not iterable": "{% for x in 3 %}{% endfor %}",
    "call non-callable": "{{ 'x'() }}",
}
for name, source in FAILING.items():
    path = os.path.join(WORK, "failing.%d.jinja" % os.getpid())
    with open(path, "w") as f:
        f.write(source)
    cases = [{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "again"}],
              "add_generation_prompt": False}, {"messages": [{"role": "user", "content": "hi"}],
                                                "add_generation_prompt": True}]
    kind, _ = oracle(source, cases[0], {})
    results, err = squeeze(["--template", path], cases)
    if kind == "error" and "compile" in _:
        check(results is None and "line" in err, "%s: squeeze refuses to compile it, naming the line (%s)" %
              (name, err.strip()[:120]))
    else:
        compare(name, ["--template", path], source, {}, cases)
    os.unlink(path)

sys.exit(1 if failures else 0)
