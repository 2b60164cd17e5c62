"""A local HTTP server answering the GitHub REST endpoints the action uses, shaped as GitHub
documents them, served under /api/v3 as GitHub Enterprise Server does. Records every request.

Endpoints: GET /repos/{o}/{r}/issues/{n}, GET|POST /repos/{o}/{r}/issues/{n}/comments,
PATCH|DELETE /repos/{o}/{r}/issues/comments/{id}, GET /repos/{o}/{r}/releases,
GET /repos/{o}/{r}/releases/{id}, GET /repos/{o}/{r}/releases/tags/{tag}, POST /repos/{o}/{r}/releases,
GET /repos/{o}/{r}/releases/{id}/assets, DELETE /repos/{o}/{r}/releases/assets/{id},
POST /api/uploads/repos/{o}/{r}/releases/{id}/assets?name=...
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict
    body: bytes
    authorization: str | None


class FakeGitHub:
    def __init__(self):
        self.requests: list[Request] = []
        self.comments: dict[int, list[dict]] = {}  # issue number -> comments
        self.releases: list[dict] = []
        self.fail_next: list[tuple[str, str, int, dict]] = []  # (method, path regex, status, body)
        self._ids = itertools.count(1000)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.api_url = self.base + "/api/v3"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    # --- state helpers for tests
    def add_release(self, tag: str, *, draft: bool = False, immutable: bool = False, release_id: int | None = None,
                    repo: str = "Codertocat/Hello-World") -> dict:
        release_id = release_id or next(self._ids)
        release = {
            "id": release_id, "url": f"{self.api_url}/repos/{repo}/releases/{release_id}",
            "html_url": f"https://github.example/{repo}/releases/tag/{tag}",
            "assets_url": f"{self.api_url}/repos/{repo}/releases/{release_id}/assets",
            "upload_url": f"{self.base}/api/uploads/repos/{repo}/releases/{release_id}/assets{{?name,label}}",
            "tag_name": tag, "target_commitish": "main", "name": tag, "body": "", "draft": draft,
            "prerelease": False, "immutable": immutable, "created_at": "2026-11-22T00:00:00Z",
            "published_at": None if draft else "2026-11-22T00:00:00Z", "author": USER, "assets": [],
        }
        self.releases.append(release)
        return release

    def calls(self, method: str, pattern: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and re.fullmatch(pattern, r.path)]

    # --- HTTP
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _respond(self, status: int, payload=None):
                body = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self):
                parsed = urllib.parse.urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, parsed.path, dict(urllib.parse.parse_qsl(parsed.query)), body,
                                  self.headers.get("Authorization"))
                fake.requests.append(request)
                for index, (method, pattern, status, payload) in enumerate(fake.fail_next):
                    if method == self.command and re.fullmatch(pattern, parsed.path):
                        del fake.fail_next[index]
                        return self._respond(status, payload)
                status, payload = fake.route(request)
                self._respond(status, payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

        return Handler

    def route(self, request: Request):
        path, method = request.path, request.method
        not_found = (404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/issues/(\d+)", path)
        if m and method == "GET":
            repo, number = m.group(1), int(m.group(2))
            return 200, {"id": number, "number": number, "url": f"{self.api_url}/repos/{repo}/issues/{number}",
                         "html_url": f"https://github.example/{repo}/pull/{number}", "state": "open",
                         "title": "Update the model", "user": USER,
                         "pull_request": {"url": f"{self.api_url}/repos/{repo}/pulls/{number}"}}
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/issues/(\d+)/comments", path)
        if m:
            repo, number = m.group(1), int(m.group(2))
            comments = self.comments.setdefault(number, [])
            if method == "GET":
                return 200, comments
            if method == "POST":
                comment_id = next(self._ids)
                comment = {"id": comment_id, "url": f"{self.api_url}/repos/{repo}/issues/comments/{comment_id}",
                           "html_url": f"https://github.example/{repo}/pull/{number}#issuecomment-{comment_id}",
                           "issue_url": f"{self.api_url}/repos/{repo}/issues/{number}",
                           "body": json.loads(request.body)["body"], "user": USER,
                           "created_at": "2026-11-22T00:00:00Z", "updated_at": "2026-11-22T00:00:00Z"}
                comments.append(comment)
                return 201, comment
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/issues/comments/(\d+)", path)
        if m:
            comment_id = int(m.group(2))
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == comment_id:
                        if method == "PATCH":
                            comment["body"] = json.loads(request.body)["body"]
                            comment["updated_at"] = "2026-11-22T01:00:00Z"
                            return 200, comment
                        if method == "DELETE":
                            comments.remove(comment)
                            return 204, None
            return not_found
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/releases", path)
        if m:
            if method == "GET":
                return 200, self.releases
            if method == "POST":
                data = json.loads(request.body)
                return 201, self.add_release(data["tag_name"], draft=data.get("draft", False), repo=m.group(1))
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/releases/tags/(.+)", path)
        if m and method == "GET":
            tag = urllib.parse.unquote(m.group(2))
            release = next((r for r in self.releases if r["tag_name"] == tag and not r["draft"]), None)
            return (200, release) if release else not_found
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/releases/(\d+)", path)
        if m and method == "GET":
            release = self._release(int(m.group(2)))
            return (200, release) if release else not_found
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/releases/(\d+)/assets", path)
        if m and method == "GET":
            release = self._release(int(m.group(2)))
            return (200, release["assets"]) if release else not_found
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/releases/assets/(\d+)", path)
        if m and method == "DELETE":
            for release in self.releases:
                for asset in release["assets"]:
                    if asset["id"] == int(m.group(2)):
                        release["assets"].remove(asset)
                        return 204, None
            return not_found
        m = re.fullmatch(r"/api/uploads/repos/([^/]+/[^/]+)/releases/(\d+)/assets", path)
        if m and method == "POST":
            release = self._release(int(m.group(2)))
            if release is None:
                return not_found
            if release["immutable"]:
                return 422, {"message": "Cannot upload assets to an immutable release."}
            name = request.query["name"]
            if any(a["name"] == name for a in release["assets"]):
                return 422, {"message": "Validation Failed", "errors": [
                    {"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}]}
            asset_id = next(self._ids)
            asset = {"id": asset_id, "url": f"{self.api_url}/repos/{m.group(1)}/releases/assets/{asset_id}",
                     "browser_download_url": f"https://github.example/{m.group(1)}/releases/download/"
                                             f"{release['tag_name']}/{name}",
                     "name": name, "label": "", "state": "uploaded", "content_type": "application/octet-stream",
                     "size": len(request.body), "digest": "sha256:" + hashlib.sha256(request.body).hexdigest(),
                     "download_count": 0, "created_at": "2026-11-22T00:00:00Z",
                     "updated_at": "2026-11-22T00:00:00Z", "uploader": USER}
            release["assets"].append(asset)
            return 201, asset
        return not_found

    def _release(self, release_id: int):
        return next((r for r in self.releases if r["id"] == release_id), None)
