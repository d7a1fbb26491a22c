"""scripts/get-model.sh on a machine without ../shared: downloads the default model and tokenizer from a local
HTTP server standing in for Hugging Face, verifies their sha256, refuses a corrupted file and a dead server
with a clear message, and leaves nothing half-written behind."""
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHARED = os.environ.get("SQ_SHARED", os.path.join(ROOT, "..", "shared"))

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

def serve(directory):
    handler = functools.partial(QuietHandler, directory=directory)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server

def run(project, env):
    return subprocess.run(["bash", os.path.join(project, "scripts", "get-model.sh")], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)

def main():
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        # a project checkout with no ../shared beside it
        project = os.path.join(tmp, "checkout", "squeeze")
        os.makedirs(os.path.join(project, "scripts"))
        shutil.copy(os.path.join(ROOT, "scripts", "get-model.sh"), os.path.join(project, "scripts"))
        site = os.path.join(tmp, "site")
        os.makedirs(site)
        os.symlink(os.path.join(SHARED, "models", "stories15M.bin"), os.path.join(site, "stories15M.bin"))
        os.symlink(os.path.join(SHARED, "models", "tokenizer.model"), os.path.join(site, "tokenizer.model"))
        with open(os.path.join(site, "corrupt.bin"), "wb") as f:
            f.write(b"not a model")
        server = serve(site)
        base = f"http://127.0.0.1:{server.server_address[1]}"
        good = {"SQ_MODEL_URL": base + "/stories15M.bin", "SQ_TOKENIZER_URL": base + "/tokenizer.model"}

        r = run(project, good)
        model = os.path.join(project, "models", "stories15M.bin")
        if r.returncode != 0 or not os.path.exists(model) or os.path.getsize(model) != 60816028:
            failures.append(f"download failed: rc={r.returncode} {r.stderr}")
        r = run(project, {"SQ_MODEL_URL": base + "/missing", "SQ_TOKENIZER_URL": base + "/missing"})
        if r.returncode != 0:
            failures.append("a second run with valid files present must not download again: " + r.stderr)

        os.remove(model)
        r = run(project, {**good, "SQ_MODEL_URL": base + "/corrupt.bin"})
        if r.returncode == 0 or "not the expected file" not in r.stderr or os.path.exists(model) \
                or os.path.exists(model + ".part"):
            failures.append(f"corrupt download accepted or left behind: rc={r.returncode} {r.stderr}")
        server.shutdown()
        server.server_close()
        r = run(project, good)
        if r.returncode == 0 or "could not download" not in r.stderr:
            failures.append(f"dead server not reported: rc={r.returncode} {r.stderr}")
    for f in failures:
        print("FAIL:", f)
    print(f"get-model: {4 - len(failures)} of 4 checks passed")
    return 1 if failures else 0

if __name__ == "__main__":
    sys.exit(main())
