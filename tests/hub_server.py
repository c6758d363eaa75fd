"""A Hugging Face Hub stand-in on 127.0.0.1, for tests that must never reach the internet.

It answers what ``huggingface_hub`` asks for (read in its ``file_download.py``, ``_commit_api.py`` and
``hf_api.py``):

- ``HEAD``/``GET /{org}/{repo}/resolve/{revision}/{path}``: the file, with ``X-Repo-Commit`` (the commit the
  revision resolves to), ``ETag`` (the blob's sha256, which names it in the cache) and ``Content-Length``;
  missing things answer 404 with the ``X-Error-Code`` huggingface_hub maps to its exceptions
  (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``);
- ``POST /api/repos/create``, ``/api/validate-yaml``, ``/api/models/{repo}/preupload/{rev}`` (every file
  "regular": sent inline, base64, in the commit) and ``/api/models/{repo}/commit/{rev}`` (NDJSON): a real
  commit, so a pushed repository is then served to downloads.

Every request is recorded in ``requests`` as ``(method, path)``, its ``Authorization`` header in ``auth``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")
_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)/(?P<op>preupload|commit)/(?P<rev>[^/]+)$")


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict] = {}  # repo -> {"refs": {name: sha}, "commits": {sha: {path: bytes}}}
        self.requests: list[tuple[str, str]] = []
        self.auth: list[str | None] = []
        self.created: list[dict] = []  # the bodies of repository creations
        self.commits: list[dict] = []  # what each commit call sent: repo, message, files
        self.lock = threading.Lock()
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add_files(self, repo: str, files: dict[str, bytes], revision: str = "main") -> str:
        """Commit ``files`` (path -> bytes) on top of ``revision``; the new commit's sha."""
        with self.lock:
            state = self.repos.setdefault(repo, {"refs": {}, "commits": {}})
            parent = state["refs"].get(revision)
            tree = dict(state["commits"].get(parent, {}))
            tree.update(files)
            sha = hashlib.sha1(repr((parent, sorted((k, hashlib.sha256(v).hexdigest())
                                                    for k, v in tree.items()))).encode()).hexdigest()
            state["commits"][sha] = tree
            state["refs"][revision] = sha
            return sha

    def gets(self, filename: str) -> int:
        """How many times the file was downloaded (GET), any repository."""
        return sum(1 for m, p in self.requests if m == "GET" and p.endswith("/" + filename))


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"", head: bool = False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", (headers or {}).get("Content-Length", str(len(body))))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _error(self, status: int, code: str, head: bool, extra: dict[str, str] | None = None):
        body = json.dumps({"error": code}).encode()
        self._send(status, {"X-Error-Code": code, "Content-Type": "application/json", **(extra or {})},
                   b"" if head else body, head=head)

    def _resolve(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append(("HEAD" if head else "GET", path))
        self.hub.auth.append(self.headers.get("Authorization"))
        match = _RESOLVE.match(path)
        state = self.hub.repos.get(match["repo"]) if match else None
        if state is None:
            return self._error(404, "RepoNotFound", head)
        sha = state["refs"].get(match["rev"], match["rev"] if match["rev"] in state["commits"] else None)
        if sha is None:
            return self._error(404, "RevisionNotFound", head)
        data = state["commits"][sha].get(match["file"])
        if data is None:
            return self._error(404, "EntryNotFound", head, {"X-Repo-Commit": sha})
        headers = {"X-Repo-Commit": sha, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        start = 0
        ranged = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
        if ranged and not head:
            start = int(ranged[1])
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        headers["Content-Length"] = str(len(data) - start)
        self._send(206 if start else 200, headers, data[start:], head=head)

    def do_HEAD(self):
        self._resolve(head=True)

    def do_GET(self):
        self._resolve(head=False)

    def do_POST(self):
        path = unquote(urlsplit(self.path).path)
        self.hub.requests.append(("POST", path))
        self.hub.auth.append(self.headers.get("Authorization"))
        body = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
        if path == "/api/repos/create":
            req = json.loads(body)
            self.hub.created.append(req)
            repo = f"{req['organization']}/{req['name']}"
            with self.hub.lock:
                self.hub.repos.setdefault(repo, {"refs": {}, "commits": {}})
            return self._send(200, {"Content-Type": "application/json"},
                              json.dumps({"url": f"{self.hub.url}/{repo}"}).encode())
        if path == "/api/validate-yaml":
            return self._send(200, {"Content-Type": "application/json"}, b'{"errors": [], "warnings": []}')
        match = _API.match(path)
        if match is None or match["repo"] not in self.hub.repos:
            return self._error(404, "RepoNotFound", head=False)
        if match["op"] == "preupload":
            files = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                     for f in json.loads(body)["files"]]
            return self._send(200, {"Content-Type": "application/json"}, json.dumps({"files": files}).encode())
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        files = {item["value"]["path"]: base64.b64decode(item["value"]["content"])
                 for item in lines if item["key"] == "file"}
        header = next(item["value"] for item in lines if item["key"] == "header")
        self.hub.commits.append({"repo": match["repo"], "message": header["summary"], "files": files})
        sha = self.hub.add_files(match["repo"], files, match["rev"])
        self._send(200, {"Content-Type": "application/json"},
                   json.dumps({"commitUrl": f"{self.hub.url}/{match['repo']}/commit/{sha}", "commitOid": sha,
                               "success": True, "pullRequestUrl": None}).encode())
