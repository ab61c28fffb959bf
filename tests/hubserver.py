"""A loopback stand-in for the Hugging Face Hub's file-resolve endpoint, for offline tests.

Serves ``/{org}/{repo}/resolve/{revision}/{filename}`` from local directories with the headers
huggingface_hub reads (``X-Repo-Commit``, ``ETag``/``X-Linked-Etag``, ``Content-Length``), so the
real `hf_hub_download` code path (HEAD, GET, cache layout) runs without leaving the machine.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    """``with HubServer({"org/name": dir}) as url: ...``; ``requests`` lists served paths."""

    def __init__(self, repos: dict[str, Path]):
        self.repos = {k: Path(v) for k, v in repos.items()}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _file(self):
                parts = unquote(self.path.split("?")[0]).strip("/").split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return None
                repo, fname = "/".join(parts[:2]), "/".join(parts[4:])
                path = server.repos.get(repo, Path("/nonexistent")) / fname
                return path if path.is_file() else None

            def _headers(self, path):
                data = path.read_bytes()
                etag = hashlib.sha256(data).hexdigest()
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Linked-Etag", f'"{etag}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                return data

            def do_HEAD(self):
                server.requests.append(f"HEAD {self.path}")
                path = self._file()
                if path is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.end_headers()
                    return
                self._headers(path)

            def do_GET(self):
                server.requests.append(f"GET {self.path}")
                path = self._file()
                if path is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.wfile.write(self._headers(path))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> str:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self.url

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()
