"""Publishing with PyGithub against GITHUB_API_URL (github.com or GitHub Enterprise Server).

- Pull requests: one comment per converted model, found again by a hidden marker and edited in place.
- Releases (published, or a pushed tag): the blob and reports as assets; an asset whose digest
  already matches is left alone, a different one is replaced, never duplicated.
Transient errors (5xx, rate limits) are retried with backoff by PyGithub's GithubRetry.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import requests
from github import Auth, Github, GithubException, GithubRetry, UnknownObjectException

from .event import Event

COMMENT_LIMIT = 65536  # GitHub's maximum comment body, in characters
CONTENT_TYPES = {".json": "application/json", ".md": "text/markdown"}


class PublishError(Exception):
    """A publishing step failed after retries; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class CommentResult:
    status: str  # created | updated | unchanged
    url: str


@dataclasses.dataclass(frozen=True)
class ReleaseResult:
    url: str
    assets: list  # [{"name", "url", "digest", "status": uploaded|replaced|unchanged}]


def client(token: str, api_url: str) -> Github:
    # Four retries, 0 + 1 + 2 + 4 s apart; rate limits wait for their reset, up to two minutes.
    retry = GithubRetry(total=4, backoff_factor=0.5, secondary_rate_wait=30, max_rate_limit_wait=120)
    return Github(auth=Auth.Token(token), base_url=api_url, retry=retry, timeout=60, per_page=100)


def marker(model: str) -> str:
    return f"<!-- myriad-blob report: {model} -->"


def fit_comment(body: str, limit: int = COMMENT_LIMIT) -> str:
    """Keep a comment under GitHub's limit: cut at a line, and say so."""
    if len(body) <= limit:
        return body
    note = "\n\n*(The report was cut to fit a GitHub comment; the full report is in the workflow's step summary.)*"
    cut = body[: limit - len(note)].rsplit("\n", 1)[0]
    return cut + note


def _explain(error: Exception, doing: str, permission: str) -> PublishError:
    if not isinstance(error, GithubException):  # the connection failed, or retries ran out
        reason = error
        while reason.__cause__ is not None or reason.__context__ is not None:
            reason = reason.__cause__ or reason.__context__
        return PublishError(f"could not {doing}: GitHub did not answer after retries ({reason})")
    message = (error.data or {}).get("message") if isinstance(error.data, dict) else None
    hint = f"; the workflow needs `permissions: {permission}`" if error.status in (401, 403, 404) else ""
    return PublishError(f"could not {doing}: GitHub answered {error.status} {message or ''}".rstrip() + hint)


def comment_report(gh: Github, event: Event, model: str, markdown: str) -> CommentResult:
    body = fit_comment(f"{marker(model)}\n{markdown}")
    try:
        issue = gh.get_repo(event.repository, lazy=True).get_issue(event.pull_request_number)
        mine = [comment for comment in issue.get_comments() if marker(model) in (comment.body or "")]
        if not mine:
            created = issue.create_comment(body)
            return CommentResult("created", created.html_url)
        first, *duplicates = mine
        for duplicate in duplicates:  # e.g. a create that was retried after a 502; keep exactly one
            duplicate.delete()
        if first.body == body:
            return CommentResult("unchanged", first.html_url)
        first.edit(body)
        return CommentResult("updated", first.html_url)
    except (GithubException, requests.RequestException) as error:
        raise _explain(error, f"comment on pull request #{event.pull_request_number}", "pull-requests: write") from error


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _find_release(repo, tag: str, release_id: int | None):
    if release_id is not None:
        return repo.get_release(release_id)
    try:
        return repo.get_release(tag)
    except UnknownObjectException:
        pass
    # /releases/tags/{tag} does not see drafts; the list does.
    for release in repo.get_releases():
        if release.tag_name == tag:
            return release
    return repo.create_git_release(tag=tag, name=tag, message="")


def upload_release_assets(gh: Github, event: Event, tag: str, files: list[Path]) -> ReleaseResult:
    try:
        repo = gh.get_repo(event.repository, lazy=True)
        release = _find_release(repo, tag, event.release_id)
        if release.raw_data.get("immutable"):
            raise PublishError(f"release {tag} is immutable, so its assets cannot be added or replaced: "
                               "upload while the release is a draft, or publish to a new tag")
        existing = {asset.name: asset for asset in release.get_assets()}
        results = []
        for path in files:
            digest = _sha256(path)
            asset = existing.get(path.name)
            if asset is not None and asset.digest == digest:
                results.append({"name": path.name, "url": asset.browser_download_url, "digest": digest,
                                "status": "unchanged"})
                continue
            if asset is not None:
                asset.delete_asset()
            uploaded = _upload(release, path)
            results.append({"name": path.name, "url": uploaded.browser_download_url, "digest": digest,
                            "status": "replaced" if asset is not None else "uploaded"})
        return ReleaseResult(release.html_url, results)
    except (GithubException, requests.RequestException) as error:
        raise _explain(error, f"upload assets to release {tag}", "contents: write") from error


def _upload(release, path: Path):
    content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")
    try:
        return release.upload_asset(str(path), name=path.name, content_type=content_type)
    except GithubException as error:
        errors = (error.data or {}).get("errors", []) if isinstance(error.data, dict) else []
        if error.status != 422 or not any(e.get("code") == "already_exists" for e in errors):
            raise
    # Another run uploaded the same name between our listing and our upload: replace it, once.
    for asset in release.get_assets():
        if asset.name == path.name:
            asset.delete_asset()
    return release.upload_asset(str(path), name=path.name, content_type=content_type)
