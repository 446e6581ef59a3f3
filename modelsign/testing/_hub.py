"""A loopback Hugging Face Hub: the HTTP endpoints the real ``huggingface_hub`` client calls.

Covers what the client calls for publishing and verifying: ``create_repo``, ``create_commit``
(including ``create_pr`` and the ``parent_commit`` check, answered with HTTP 412 when stale, like
the Hub), repo info with file metadata (``files_metadata=True``), tree listing, paths-info, and
``HEAD``/``GET`` resolve with ETag, ``X-Repo-Commit`` and range support. Every upload is answered as
"regular" in preupload, so the client never takes the LFS or Xet paths; ``.safetensors`` files and
files over :attr:`LoopbackHub.lfs_threshold` are *reported* as LFS files, with their sha256 in the
metadata, exactly as the Hub reports them.

Tests can look at and change the server's state directly: :meth:`LoopbackHub.files`,
:meth:`LoopbackHub.history`, :meth:`LoopbackHub.downloads`, and :meth:`LoopbackHub.tamper`, which
rewrites a file's bytes inside an existing commit (same commit id), as a compromised Hub or a
storage-level swap would.

Usage (the client needs the endpoint: pass ``endpoint=hub.url`` to ``HfApi`` and the download
functions, or set ``HF_ENDPOINT`` before ``huggingface_hub`` is first imported)::

    with LoopbackHub() as hub:
        api = HfApi(endpoint=hub.url, token="hf_loopback")
        ...

Stdlib only; binds 127.0.0.1 on a free port, so parallel test workers do not collide.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = [
    "LoopbackHub",
    "HubCommit",
    "HubRepo",
    "HubRequest",
    "CONFLICT_MESSAGE",
    "git_blob_sha1",
    "lfs_pointer",
]

#: Files larger than this are reported as LFS files ...
LFS_THRESHOLD = 10 * 1024 * 1024
#: ... and so are files with these suffixes (as the Hub's default .gitattributes says).
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".pkl", ".h5", ".onnx", ".gguf")
#: The real Hub's text for a stale ``parent_commit`` (HTTP 412).
CONFLICT_MESSAGE = "A commit has happened since. Please refresh and try again."
GITATTRIBUTES = b"".join(b"*%s filter=lfs diff=lfs merge=lfs -text\n" % s.encode()
                         for s in LFS_SUFFIXES)
_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_REPO = r"(?P<repo>[^/]+/[^/]+)"  # repo ids are "namespace/name"
_T = r"(?P<t>models|datasets|spaces)"
_ROUTE_TABLE = [  # (method, regex on the raw, still-quoted path, handler name)
    ("POST", r"/api/repos/create", "create_repo"),
    ("GET", r"/api/agent-harnesses", "agent_harnesses"),  # the client's user-agent builder
    ("POST", r"/api/validate-yaml", "validate_yaml"),  # before a commit that adds README.md
    ("GET", rf"/api/{_T}/{_REPO}(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
    ("POST", rf"/api/{_T}/{_REPO}/preupload/(?P<rev>[^/]+)", "preupload"),
    ("POST", rf"/api/{_T}/{_REPO}/commit/(?P<rev>[^/]+)", "commit"),
    ("GET", rf"/api/{_T}/{_REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
    ("POST", rf"/api/{_T}/{_REPO}/paths-info/(?P<rev>[^/]+)", "paths_info"),
    ("GET", rf"/(?:(?P<t>datasets|spaces)/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
     "resolve"),
    ("HEAD", rf"/(?:(?P<t>datasets|spaces)/)?{_REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)",
     "resolve"),
]
_ROUTES = [(m, re.compile(p + r"/?"), h) for m, p, h in _ROUTE_TABLE]


def git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob, as ``git hash-object`` computes it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The git-lfs pointer file that git stores in place of an LFS file's content."""
    sha = hashlib.sha256(data).hexdigest()
    return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\n"
            f"size {len(data)}\n").encode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None,
                 headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = dict(headers or {})
        self.extra = extra


@dataclass
class HubCommit:
    """One commit: the full tree (``path -> bytes``) at that commit."""

    oid: str
    parent: str | None
    title: str
    files: dict[str, bytes]
    date: str = field(default_factory=_now)
    #: ``path -> original bytes`` of files rewritten by :meth:`LoopbackHub.tamper`.
    tampered: dict[str, bytes] = field(default_factory=dict)
    #: ``path -> bytes the metadata describes`` when the Hub lies about a file
    #: (``tamper(..., lie=True)``): sizes, sha256 and ETags of these, content of ``files``.
    described: dict[str, bytes] = field(default_factory=dict)

    def metadata_bytes(self, path: str) -> bytes:
        return self.described.get(path, self.files[path])


@dataclass
class HubRepo:
    repo_type: str
    repo_id: str
    commits: dict[str, HubCommit] = field(default_factory=dict)
    #: branch or ref name (``main``, ``refs/pr/1``) -> head commit id
    refs: dict[str, str] = field(default_factory=dict)
    created_at: str = field(default_factory=_now)
    pull_requests: int = 0


@dataclass(frozen=True)
class HubRequest:
    method: str
    path: str  # raw path with query string
    status: int | None


class LoopbackHub:
    """An in-memory Hub on 127.0.0.1: start it (or use ``with``), point the client at ``url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 lfs_threshold: int = LFS_THRESHOLD) -> None:
        self.host, self.port, self.lfs_threshold = host, port, lfs_threshold
        self.repos: dict[tuple[str, str], HubRepo] = {}
        self.requests: list[HubRequest] = []
        #: (method, path) of requests no route matched (answered 404): should stay empty.
        self.unhandled: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> LoopbackHub:
        if self._httpd is not None:
            return self
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer((self.host, self.port), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="loopback-hub",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd = None
            self._thread = None

    def __enter__(self) -> LoopbackHub:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ state, for tests
    def create_repo(self, repo_id: str, *, repo_type: str = "model") -> HubRepo:
        """Create a repo server-side: one "initial commit" with ``.gitattributes``, as the Hub."""
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise ValueError(f"{repo_type} repo {repo_id} exists")
            repo = self.repos[(repo_type, repo_id)] = HubRepo(repo_type, repo_id)
            self._add_commit(repo, "main", "initial commit", {".gitattributes": GITATTRIBUTES})
            return repo

    def repo(self, repo_id: str, *, repo_type: str = "model") -> HubRepo:
        with self.lock:
            return self._get_repo(repo_type, repo_id)

    def head(self, repo_id: str, ref: str = "main", *, repo_type: str = "model") -> str:
        """The commit id ``ref`` (a branch, ``refs/pr/N``, or a commit id) points at."""
        with self.lock:
            return self._get_commit(self._get_repo(repo_type, repo_id), ref).oid

    def files(self, repo_id: str, revision: str = "main", *,
              repo_type: str = "model") -> dict[str, bytes]:
        """A copy of the tree at ``revision``: ``path -> bytes``."""
        with self.lock:
            return dict(self._get_commit(self._get_repo(repo_type, repo_id), revision).files)

    def history(self, repo_id: str, revision: str = "main", *,
                repo_type: str = "model") -> list[HubCommit]:
        """Commits reachable from ``revision``, newest first (the initial commit last)."""
        with self.lock:
            repo = self._get_repo(repo_type, repo_id)
            out, commit = [], self._get_commit(repo, revision)
            while True:
                out.append(commit)
                if commit.parent is None:
                    return out
                commit = repo.commits[commit.parent]

    def tamper(self, repo_id: str, path: str, data: bytes, *, revision: str = "main",
               lie: bool = False, repo_type: str = "model") -> str:
        """Replace ``path``'s bytes *inside* the commit ``revision`` points at, keeping its id.

        What a compromised Hub (or storage swap) does: clients pinned to that commit get other
        bytes. By default the file metadata (LFS sha256, size, ETag) describes the new bytes;
        with ``lie=True`` it keeps describing the original ones (keep ``data`` the same size,
        or the client's size check notices). Returns the commit id.
        """
        with self.lock:
            commit = self._get_commit(self._get_repo(repo_type, repo_id), revision)
            if path not in commit.files:
                raise KeyError(f"{path} is not in commit {commit.oid}")
            commit.tampered.setdefault(path, commit.files[path])
            if lie:
                commit.described.setdefault(path, commit.files[path])
            elif path in commit.described:
                del commit.described[path]
            commit.files[path] = data
            return commit.oid

    def downloads(self, repo_id: str | None = None, *, since: int = 0) -> list[str]:
        """Paths whose *content* was served (GET resolve with status 200/206), in order.

        ``since`` is an index into :attr:`requests` (take ``len(hub.requests)`` before an action).
        """
        out = []
        for req in self.requests[since:]:
            if req.method != "GET" or req.status not in (200, 206):
                continue
            m = _ROUTES[-2][1].fullmatch(urlsplit(req.path).path)
            if m and (repo_id is None or unquote(m["repo"]) == repo_id):
                out.append(unquote(m["path"]))
        return out

    def commit_posts(self, repo_id: str, *, since: int = 0) -> list[HubRequest]:
        """The commit requests made for ``repo_id`` (to count commits per publish)."""
        return [r for r in self.requests[since:]
                if r.method == "POST" and f"/{repo_id}/commit/" in r.path]

    # ------------------------------------------------------------------ model helpers
    def is_lfs(self, path: str, data: bytes) -> bool:
        return len(data) > self.lfs_threshold or path.endswith(LFS_SUFFIXES)

    def _get_repo(self, repo_type: str, repo_id: str) -> HubRepo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise _HubError(404, f"Repository Not Found: {repo_id}", "RepoNotFound")
        return repo

    def _get_commit(self, repo: HubRepo, rev: str) -> HubCommit:
        oid = repo.refs.get(rev) or (rev if rev in repo.commits else None)
        if oid is None:
            raise _HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")
        return repo.commits[oid]

    def _add_commit(self, repo: HubRepo, ref: str, title: str, files: dict[str, bytes],
                    parent: str | None = None) -> HubCommit:
        parent = parent if parent is not None else repo.refs.get(ref)
        seed = f"{repo.repo_id}\n{parent}\n{title}\n{time.time_ns()}\n{len(repo.commits)}\n"
        seed += "".join(f"{p}:{git_blob_sha1(d)}\n" for p, d in sorted(files.items()))
        commit = HubCommit(hashlib.sha1(seed.encode()).hexdigest(), parent, title, files)
        repo.commits[commit.oid] = commit
        repo.refs[ref] = commit.oid
        return commit

    def _file_entry(self, path: str, data: bytes) -> dict[str, Any]:
        """Tree / paths-info entry. LFS files: ``oid`` is the git id of the pointer file."""
        if not self.is_lfs(path, data):
            return {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}
        pointer = lfs_pointer(data)
        lfs = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
               "pointerSize": len(pointer)}
        return {"type": "file", "oid": git_blob_sha1(pointer), "size": len(data), "path": path,
                "lfs": lfs}

    @staticmethod
    def _dir_entry(path: str, files: Mapping[str, bytes]) -> dict[str, Any]:
        # A stable 40-hex id derived from the folder's content (not a real git tree id).
        listing = "".join(f"{p}:{git_blob_sha1(d)}\n" for p, d in sorted(files.items())
                          if p.startswith(path + "/"))
        return {"type": "directory", "oid": hashlib.sha1(listing.encode()).hexdigest(),
                "size": 0, "path": path}


def _flag(query: Mapping[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("1", "true")


class _Handler(BaseHTTPRequestHandler):
    hub: LoopbackHub
    protocol_version = "HTTP/1.1"  # keep-alive, like the real Hub; every response sets a length
    query: dict[str, list[str]]
    body: bytes
    status: int | None
    _logged: bool

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.status = None
        self._logged = False
        try:
            for route_method, regex, handler in _ROUTES:
                match = regex.fullmatch(split.path)
                if route_method == method and match:
                    args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                    kind = args.pop("t", "") or "models"
                    args["repo_type"] = _TYPES.get(kind, "model")
                    getattr(self, "h_" + handler)(**args)
                    break
            else:
                self.hub.unhandled.append((method, self.path))
                raise _HubError(404, f"Loopback hub does not implement {method} {split.path}")
        except _HubError as e:
            self._send_json({"error": e.message, **e.extra}, e.status,
                            {"X-Error-Code": e.code, **e.headers})
        except Exception as e:  # noqa: BLE001 - a bug here: answer 400 (a 5xx makes the client retry)
            self._send_json({"error": f"loopback hub error: {e!r}"}, 400)
        finally:
            self._log()

    def _log(self) -> None:
        """Record the request once, *before* the response leaves, so a test that reads
        ``hub.requests`` right after the client returns sees it."""
        if not self._logged:
            self._logged = True
            self.hub.requests.append(HubRequest(self.command, self.path, self.status))

    # ------------------------------------------------------------------ response helpers
    def _send(self, status: int, body: bytes, headers: Mapping[str, Any]) -> None:
        self.status = status
        self._log()
        self.send_response(status)
        for key, value in headers.items():
            if value is not None:
                self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(body)))  # for HEAD: what a GET would return
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, obj: Any, status: int = 200,
                   headers: Mapping[str, Any] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(),
                   {"Content-Type": "application/json", **(headers or {})})

    def _json_body(self) -> Any:
        try:
            return json.loads(self.body or b"{}")
        except ValueError as e:
            raise _HubError(400, "Request body is not valid JSON") from e

    # ------------------------------------------------------------------ endpoints
    def h_create_repo(self, repo_type: str) -> None:
        payload = self._json_body()
        repo_type = payload.get("type") or "model"
        if not payload.get("organization"):
            raise _HubError(400, "This loopback hub needs an explicit namespace: "
                                 "use repo_id='namespace/name'")
        repo_id = f"{payload['organization']}/{payload['name']}"
        url = f"{self.hub.url}/{_URL_PREFIX.get(repo_type, '')}{repo_id}"
        with self.hub.lock:
            if (repo_type, repo_id) in self.hub.repos:  # exist_ok reads `url`
                raise _HubError(409, f"You already created this {repo_type} repo", url=url)
            self.hub.create_repo(repo_id, repo_type=repo_type)
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def h_agent_harnesses(self, repo_type: str) -> None:
        # Best-effort fetch made when telemetry is on: an empty registry means "no agent".
        self._send_json({"standardEnvVars": [], "harnesses": {}})

    def h_validate_yaml(self, repo_type: str) -> None:
        payload = self._json_body()
        content = payload.get("content")
        if not isinstance(content, str):
            raise _HubError(400, "validate-yaml needs a string `content`")
        # The real Hub checks the card's YAML header; the loopback hub accepts any card.
        self._send_json({"errors": [], "warnings": []})

    def h_repo_info(self, repo_type: str, repo: str, rev: str = "main") -> None:
        with self.hub.lock:
            r = self.hub._get_repo(repo_type, repo)
            commit = self.hub._get_commit(r, rev)
            files = {p: commit.metadata_bytes(p) for p in commit.files}
        blobs = _flag(self.query, "blobs")
        siblings = []
        for path, data in sorted(files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:  # files_metadata=True: size, blobId and lfs {sha256, size, pointerSize}
                entry = self.hub._file_entry(path, data)
                sibling.update(size=entry["size"], blobId=entry["oid"])
                if "lfs" in entry:
                    lfs = entry["lfs"]
                    sibling["lfs"] = {"sha256": lfs["oid"], "size": lfs["size"],
                                      "pointerSize": lfs["pointerSize"]}
            siblings.append(sibling)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.encode()).hexdigest()[:24], "id": repo,
            "author": repo.split("/")[0], "sha": commit.oid, "lastModified": commit.date,
            "createdAt": r.created_at, "private": False, "disabled": False, "gated": False,
            "tags": [], "downloads": 0, "likes": 0, "siblings": siblings}
        if repo_type == "model":
            info["modelId"] = repo
        self._send_json(info)

    def h_preupload(self, repo_type: str, repo: str, rev: str) -> None:
        payload = self._json_body()
        with self.hub.lock:
            current = self.hub._get_commit(self.hub._get_repo(repo_type, repo), rev).files
        files = []
        for f in payload.get("files", []):
            existing = current.get(f["path"])
            # "regular" for everything: content travels base64-encoded in the commit payload, so
            # the client never calls the LFS batch API nor hf_xet. `oid` (git sha1 of the current
            # content) lets the client drop unchanged files, as against the real Hub.
            oid = git_blob_sha1(existing) if existing is not None else None
            files.append({"path": f["path"], "uploadMode": "regular", "shouldIgnore": False,
                          "oid": oid})
        self._send_json({"files": files})

    def h_commit(self, repo_type: str, repo: str, rev: str) -> None:
        create_pr = _flag(self.query, "create_pr")
        try:
            lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
        except ValueError as e:
            raise _HubError(400, "Commit payload must be NDJSON") from e
        if not lines or lines[0].get("key") != "header":
            raise _HubError(400, "First NDJSON line must be the commit header")
        header = lines[0]["value"]
        with self.hub.lock:  # parent check + apply + move the ref, atomically
            r = self.hub._get_repo(repo_type, repo)
            if rev not in r.refs:
                raise _HubError(404, f"Invalid rev id: {rev} (commits must target a branch)",
                                "RevisionNotFound")
            head = r.refs[rev]
            parent = header.get("parentCommit")
            if create_pr:  # the PR starts from parent_commit (or the branch head)
                base = head
                if parent:
                    known = [oid for oid in r.commits
                             if oid == parent or (len(parent) < 40 and oid.startswith(parent))]
                    if len(known) != 1:
                        raise _HubError(412, CONFLICT_MESSAGE)
                    base = known[0]
            else:
                if parent and not (head == parent
                                   or (len(parent) < 40 and head.startswith(parent))):
                    raise _HubError(412, CONFLICT_MESSAGE)
                base = head
            files = dict(r.commits[base].files)
            for line in lines[1:]:
                self._apply(files, line.get("key"), line.get("value") or {})
            pr_url = None
            if create_pr:
                r.pull_requests += 1
                ref = f"refs/pr/{r.pull_requests}"
                commit = self.hub._add_commit(r, ref, header.get("summary", ""), files, base)
                pr_url = f"{self.hub.url}/{_URL_PREFIX[repo_type]}{repo}/discussions/" \
                         f"{r.pull_requests}"
            else:
                commit = self.hub._add_commit(r, rev, header.get("summary", ""), files)
        commit_url = f"{self.hub.url}/{_URL_PREFIX[repo_type]}{repo}/commit/{commit.oid}"
        self._send_json({"success": True, "commitOid": commit.oid, "commitUrl": commit_url,
                         "pullRequestUrl": pr_url})

    @staticmethod
    def _apply(files: dict[str, bytes], key: Any, value: Mapping[str, Any]) -> None:
        path = value.get("path", "")
        if key == "file":
            content = value.get("content", "")
            files[path] = (base64.b64decode(content) if value.get("encoding") == "base64"
                           else content.encode())
        elif key == "deletedFile":
            if files.pop(path, None) is None:
                raise _HubError(404, f"A file with this name doesn't exist: {path}",
                                "EntryNotFound")
        elif key == "deletedFolder":
            prefix = path.rstrip("/") + "/"
            doomed = [p for p in files if p.startswith(prefix)]
            if not doomed:
                raise _HubError(404, f"A folder with this name doesn't exist: {path}",
                                "EntryNotFound")
            for p in doomed:
                del files[p]
        else:  # lfsFile and copies need an LFS store: the loopback hub answers "regular" only
            raise _HubError(400, f"Unsupported commit operation: {key}")

    def h_tree(self, repo_type: str, repo: str, rev: str, path: str = "") -> None:
        with self.hub.lock:
            commit = self.hub._get_commit(self.hub._get_repo(repo_type, repo), rev)
            files = {p: commit.metadata_bytes(p) for p in commit.files}
        base = path.strip("/")
        prefix = base + "/" if base else ""
        recursive = _flag(self.query, "recursive")
        dirs: set[str] = set()
        entries = []
        for p in sorted(files):
            if not p.startswith(prefix):
                continue
            parts = p[len(prefix):].split("/")
            if recursive or len(parts) == 1:
                entries.append(self.hub._file_entry(p, files[p]))
            for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
                dirs.add(prefix + "/".join(parts[:depth]))
        if base and not entries and not dirs:
            raise _HubError(404, f"Path {base} not found in tree", "EntryNotFound",
                            {"X-Repo-Commit": commit.oid})
        entries += [self.hub._dir_entry(d, files) for d in sorted(dirs)]
        self._send_json(sorted(entries, key=lambda e: e["path"]))  # one page, no Link header

    def h_paths_info(self, repo_type: str, repo: str, rev: str) -> None:
        ctype = self.headers.get("Content-Type", "")
        form = (self._json_body() if "json" in ctype
                else parse_qs(self.body.decode(), keep_blank_values=True))
        paths = form.get("paths", [])
        with self.hub.lock:
            commit = self.hub._get_commit(self.hub._get_repo(repo_type, repo), rev)
            files = {p: commit.metadata_bytes(p) for p in commit.files}
        out = []
        for raw in [paths] if isinstance(paths, str) else paths:
            path = raw.strip("/")
            if path in files:
                out.append(self.hub._file_entry(path, files[path]))
            elif any(p.startswith(path + "/") for p in files):
                out.append(self.hub._dir_entry(path, files))
            # unknown paths are silently ignored, like on the real Hub
        self._send_json(out)

    def h_resolve(self, repo_type: str, repo: str, rev: str, path: str) -> None:
        with self.hub.lock:
            commit = self.hub._get_commit(self.hub._get_repo(repo_type, repo), rev)
            data = commit.files.get(path)
            meta = commit.metadata_bytes(path) if data is not None else b""
        if data is None:  # the client caches the absence under .no_exist/<X-Repo-Commit>/
            raise _HubError(404, f"Entry not found: {path}", "EntryNotFound",
                            {"X-Repo-Commit": commit.oid})
        headers: dict[str, Any] = {"X-Repo-Commit": commit.oid, "Accept-Ranges": "bytes",
                                   "Content-Type": "application/octet-stream"}
        if self.hub.is_lfs(path, meta):  # ETag of an LFS file = sha256 (its blob name in cache)
            sha256 = hashlib.sha256(meta).hexdigest()
            headers.update({"ETag": f'"{sha256}"', "X-Linked-Etag": f'"{sha256}"',
                            "X-Linked-Size": len(meta)})
        else:  # ETag of a regular git file = its git blob sha1
            headers["ETag"] = f'"{git_blob_sha1(meta)}"'
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if match:  # Range is only sent by the client to resume an interrupted download
            start_s, end_s = match.groups()
            if start_s:
                start = int(start_s)
                end = min(int(end_s) if end_s else len(data) - 1, len(data) - 1)
            else:  # suffix range: the last N bytes
                start, end = max(len(data) - int(end_s or 0), 0), len(data) - 1
            if start >= len(data) or start > end:
                raise _HubError(416, "Range not satisfiable",
                                headers={"Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            self._send(206, data[start:end + 1], headers)
        else:
            self._send(200, data, headers)
