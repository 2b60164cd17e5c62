"""A local HTTP server answering the GitHub REST endpoints the action uses, shaped as GitHub
documents them, served under /api/v3 as GitHub Enterprise Server does. Records every request.

Endpoints: POST /api/graphql (the `viewer` query), GET /repos/{o}/{r}/pulls?state=&head=owner:branch,
GET /repos/{o}/{r}/issues/{n},
GET|POST /repos/{o}/{r}/issues/{n}/comments, PATCH|DELETE /repos/{o}/{r}/issues/comments/{id},
GET|POST /repos/{o}/{r}/releases, GET|PATCH /repos/{o}/{r}/releases/{id},
GET /repos/{o}/{r}/releases/tags/{tag}, GET /repos/{o}/{r}/releases/{id}/assets,
GET|PATCH|DELETE /repos/{o}/{r}/releases/assets/{id},
POST /api/uploads/repos/{o}/{r}/releases/{id}/assets?name=...

Writes are authored by the identity of the request's token (`tokens`; unknown tokens are
github-actions[bot], as GITHUB_TOKEN is). `immutable_releases` turns on the repository setting:
a release becomes immutable when it is published, and then its assets cannot change.
`fail_next` answers a matching request with an error, either instead of handling it or, with
`applied=True`, after handling it (the write happened but its answer was lost, as with a 502 from
a proxy): the case where a blind retry would duplicate.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USER = {"login": "github-actions[bot]", "id": 41898282, "type": "Bot"}


def user(login: str, user_id: int, kind: str = "User") -> dict:
    return {"login": login, "id": user_id, "type": kind}


@dataclasses.dataclass
class Failure:
    method: str
    pattern: str  # regex on the path
    status: int
    body: dict
    applied: bool = False  # handle the request, then answer with the error anyway


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
        self.pulls: list[dict] = []  # GET /repos/{repo}/pulls (add_pull)
        # Failure, or (method, path regex, status, body[, applied]); each answers one request.
        self.fail_next: list = []
        self.tokens: dict[str, dict] = {}  # token -> the user it authenticates as
        self.immutable_releases = False
        self.graphql_errors = False  # the viewer query answers with an error (an older GHES, say)
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.api_url = self.base + "/api/v3"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()

    # --- state helpers for tests
    def add_release(
        self,
        tag: str,
        *,
        draft: bool = False,
        immutable: bool = False,
        release_id: int | None = None,
        repo: str = "Codertocat/Hello-World",
    ) -> dict:
        release_id = release_id or next(self._ids)
        release = {
            "id": release_id,
            "url": f"{self.api_url}/repos/{repo}/releases/{release_id}",
            "html_url": f"https://github.example/{repo}/releases/tag/{tag}",
            "assets_url": f"{self.api_url}/repos/{repo}/releases/{release_id}/assets",
            "upload_url": f"{self.base}/api/uploads/repos/{repo}/releases/{release_id}/assets{{?name,label}}",
            "tag_name": tag,
            "target_commitish": "main",
            "name": tag,
            "body": "",
            "draft": draft,
            "prerelease": False,
            "immutable": immutable,
            "created_at": "2026-11-22T00:00:00Z",
            "published_at": None if draft else "2026-11-22T00:00:00Z",
            "author": USER,
            "assets": [],
        }
        self.releases.append(release)
        return release

    def add_pull(self, number: int, owner: str, branch: str, sha: str, repo: str = "Codertocat/Hello-World") -> dict:
        """An open pull request whose head is owner:branch at sha (a fork's when owner is not repo's)."""
        pull = {
            "id": number,
            "number": number,
            "state": "open",
            "url": f"{self.api_url}/repos/{repo}/pulls/{number}",
            "html_url": f"https://github.example/{repo}/pull/{number}",
            "head": {"label": f"{owner}:{branch}", "ref": branch, "sha": sha, "user": {"login": owner}},
        }
        self.pulls.append(pull)
        return pull

    def add_comment(self, number: int, body: str, author: dict) -> dict:
        return self._create_comment("Codertocat/Hello-World", number, body, author)

    def _create_comment(self, repo: str, number: int, body: str, author: dict) -> dict:
        comment_id = next(self._ids)
        comment = {
            "id": comment_id,
            "url": f"{self.api_url}/repos/{repo}/issues/comments/{comment_id}",
            "html_url": f"https://github.example/{repo}/pull/{number}#issuecomment-{comment_id}",
            "issue_url": f"{self.api_url}/repos/{repo}/issues/{number}",
            "body": body,
            "user": author,
            "created_at": "2026-11-22T00:00:00Z",
            "updated_at": "2026-11-22T00:00:00Z",
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    def add_asset(
        self,
        release: dict,
        name: str,
        content: bytes,
        *,
        state: str = "uploaded",
        repo: str = "Codertocat/Hello-World",
        uploader: dict = USER,
        created_at: str | None = None,
    ) -> dict:
        created_at = created_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        asset_id = next(self._ids)
        asset = {
            "id": asset_id,
            "url": f"{self.api_url}/repos/{repo}/releases/assets/{asset_id}",
            "browser_download_url": f"https://github.example/{repo}/releases/download/{release['tag_name']}/{name}",
            "name": name,
            "label": "",
            "state": state,
            "content_type": "application/octet-stream",
            "size": len(content),
            "digest": "sha256:" + hashlib.sha256(content).hexdigest(),
            "download_count": 0,
            "created_at": created_at,
            "updated_at": created_at,
            "uploader": uploader,
        }
        release["assets"].append(asset)
        return asset

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
                request = Request(
                    self.command,
                    parsed.path,
                    dict(urllib.parse.parse_qsl(parsed.query)),
                    body,
                    self.headers.get("Authorization"),
                )
                fake.requests.append(request)
                with fake._lock:
                    failure = fake._take_failure(self.command, parsed.path)
                    if failure is not None and not failure.applied:
                        return self._respond(failure.status, failure.body)
                    status, payload = fake.route(request)
                if failure is not None:
                    return self._respond(failure.status, failure.body)
                self._respond(status, payload)

            do_GET = do_POST = do_PATCH = do_DELETE = _handle

        return Handler

    def _take_failure(self, method: str, path: str) -> Failure | None:
        for index, failure in enumerate(self.fail_next):
            if not isinstance(failure, Failure):
                failure = Failure(*failure)
            if failure.method == method and re.fullmatch(failure.pattern, path):
                del self.fail_next[index]
                return failure
        return None

    def author(self, request: Request) -> dict:
        token = (request.authorization or "").split(" ")[-1]
        return self.tokens.get(token, USER)

    def route(self, request: Request):
        path, method = request.path, request.method
        not_found = (404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        if path == "/api/graphql" and method == "POST":
            query = json.loads(request.body)["query"]
            if self.graphql_errors or "viewer" not in query:
                return 200, {
                    "data": None,
                    "errors": [{"type": "FORBIDDEN", "message": "Resource not accessible by integration"}],
                }
            me = self.author(request)
            return 200, {"data": {"viewer": {"login": me["login"], "databaseId": me["id"]}}}
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/issues/(\d+)", path)
        if m and method == "GET":
            repo, number = m.group(1), int(m.group(2))
            return 200, {
                "id": number,
                "number": number,
                "url": f"{self.api_url}/repos/{repo}/issues/{number}",
                "html_url": f"https://github.example/{repo}/pull/{number}",
                "state": "open",
                "title": "Update the model",
                "user": USER,
                "pull_request": {"url": f"{self.api_url}/repos/{repo}/pulls/{number}"},
            }
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/pulls", path)
        if m and method == "GET":  # as GitHub documents it: state and head ("owner:branch") filters
            state, head = request.query.get("state", "open"), request.query.get("head")
            return 200, [
                p
                for p in self.pulls
                if (state == "all" or p["state"] == state) and (head is None or p["head"]["label"] == head)
            ]
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/issues/(\d+)/comments", path)
        if m:
            repo, number = m.group(1), int(m.group(2))
            comments = self.comments.setdefault(number, [])
            if method == "GET":
                return 200, comments
            if method == "POST":
                return 201, self._create_comment(repo, number, json.loads(request.body)["body"], self.author(request))
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/issues/comments/(\d+)", path)
        if m:
            comment_id = int(m.group(2))
            for comments in self.comments.values():
                for comment in comments:
                    if comment["id"] == comment_id:
                        if method in ("PATCH", "DELETE") and comment["user"]["id"] != self.author(request)["id"]:
                            # Only the author (or a maintainer's token, which the tests do not use) may.
                            return 403, {"message": "Must have admin rights to Repository."}
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
                if any(r["tag_name"] == data["tag_name"] for r in self.releases if not r["draft"]):
                    return 422, {
                        "message": "Validation Failed",
                        "errors": [{"resource": "Release", "code": "already_exists", "field": "tag_name"}],
                    }
                draft = data.get("draft", False)
                release = self.add_release(
                    data["tag_name"], draft=draft, repo=m.group(1), immutable=self.immutable_releases and not draft
                )
                release.update(
                    name=data.get("name") or data["tag_name"], body=data.get("body") or "", author=self.author(request)
                )
                return 201, release
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/releases/tags/(.+)", path)
        if m and method == "GET":
            tag = urllib.parse.unquote(m.group(2))
            release = next((r for r in self.releases if r["tag_name"] == tag and not r["draft"]), None)
            return (200, release) if release else not_found
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/releases/(\d+)", path)
        if m and method in ("GET", "PATCH"):
            release = self._release(int(m.group(2)))
            if release is None:
                return not_found
            if method == "PATCH":
                if release["immutable"]:
                    return 422, {"message": "Cannot modify an immutable release."}
                data = json.loads(request.body)
                for key in ("tag_name", "name", "body", "draft", "prerelease"):
                    if key in data:
                        release[key] = data[key]
                if not release["draft"]:
                    release["published_at"] = release["published_at"] or "2026-11-22T02:00:00Z"
                    release["immutable"] = self.immutable_releases
                release["html_url"] = re.sub(r"/tag/.*$", f"/tag/{release['tag_name']}", release["html_url"])
            return 200, release
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/releases/(\d+)/assets", path)
        if m and method == "GET":
            release = self._release(int(m.group(2)))
            return (200, release["assets"]) if release else not_found
        m = re.fullmatch(r"/api/v3/repos/([^/]+/[^/]+)/releases/assets/(\d+)", path)
        if m:
            for release in self.releases:
                for asset in release["assets"]:
                    if asset["id"] != int(m.group(2)):
                        continue
                    if method == "GET":
                        return 200, asset
                    if release["immutable"] and method in ("PATCH", "DELETE"):
                        return 422, {"message": "Cannot modify an asset of an immutable release."}
                    if method == "DELETE":
                        release["assets"].remove(asset)
                        return 204, None
                    if method == "PATCH":
                        data = json.loads(request.body)
                        name = data.get("name", asset["name"])
                        if any(a["name"] == name and a is not asset for a in release["assets"]):
                            return 422, {
                                "message": "Validation Failed",
                                "errors": [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}],
                            }
                        asset["name"], asset["label"] = name, data.get("label", asset["label"])
                        asset["browser_download_url"] = asset["browser_download_url"].rsplit("/", 1)[0] + "/" + name
                        return 200, asset
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
                return 422, {
                    "message": "Validation Failed",
                    "errors": [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}],
                }
            return 201, self.add_asset(release, name, request.body, repo=m.group(1), uploader=self.author(request))
        return not_found

    def _release(self, release_id: int):
        return next((r for r in self.releases if r["id"] == release_id), None)
