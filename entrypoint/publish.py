"""Publishing with PyGithub against GITHUB_API_URL (github.com or GitHub Enterprise Server).

- Pull requests: one comment per converted model, written by the token's own identity, found
  again by a hidden marker *and* that author, and edited in place. A comment by anyone else is
  never edited or deleted, marker or not.
- Releases (published, a pushed tag, or `release-tag`): the blob and reports as assets. A pushed
  tag without a release gets a draft, the assets, then publication (so repositories with
  immutable releases receive them). An asset whose digest already matches is left alone; a
  different one is replaced by uploading the new file under a temporary name, deleting the old
  one and renaming the new one (GitHub has no in-place replace, and names are unique).

Retries. Reads (GET) and DELETE are retried by PyGithub's GithubRetry; a DELETE whose retry
finds nothing (404) is done. POST and PATCH are not retried blindly, since a write whose answer
was lost may have happened: `_write` retries them here, and before repeating a POST that creates
something (a comment, a release, an upload) it looks again for what the first attempt may have
made, so a retry never duplicates. A PATCH (an edit, a rename, publishing) is retried as is.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
import secrets
import time
from pathlib import Path

import requests
from github import Auth, Github, GithubException, GithubRetry, UnknownObjectException
from urllib3.util.retry import Retry

from myriad_blob.markdown_text import fit

from .event import Event

COMMENT_LIMIT = 65536  # GitHub's maximum comment body, in characters
CONTENT_TYPES = {".json": "application/json", ".md": "text/markdown", ".xz": "application/x-xz"}
ATTEMPTS = 5  # for one write: the first try and four retries
DRAFT_MARKER = "<!-- myriad-blob: release created for this tag; published once its assets are uploaded -->"
TEMP_PREFIX = "myriad-blob-upload-"  # an asset being replaced is uploaded under this prefix first


def _delay(attempt: int) -> float:
    """Seconds before retry number `attempt` (1, 2, ...): 1, 2, 4, 8 by default."""
    base = float(os.environ.get("MYRIAD_BLOB_RETRY_SECONDS") or 1)
    return base * 2 ** (attempt - 1)


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
    # GETs and DELETEs: four retries, 0 + 1 + 2 + 4 s apart (scaled by MYRIAD_BLOB_RETRY_SECONDS);
    # rate limits wait for their reset, up to two minutes. POST and PATCH: see _write.
    retry = GithubRetry(
        total=4,
        backoff_factor=_delay(1) / 2,
        secondary_rate_wait=30,
        max_rate_limit_wait=120,
        allowed_methods=Retry.DEFAULT_ALLOWED_METHODS,
    )
    return Github(auth=Auth.Token(token), base_url=api_url, retry=retry, timeout=60, per_page=100)


def marker(model: str) -> str:
    # A path holding "-->" would end the hidden comment early and show the rest (and "<" opens
    # nothing in it), one holding a line break would spread it over lines; other paths keep the marker earlier runs wrote, so
    # their comments are found again.
    one_line = "⏎".join(model.splitlines()).replace("<", "&lt;").replace(">", "&gt;")
    return f"<!-- myriad-blob report: {one_line} -->"


def fit_comment(body: str, limit: int = COMMENT_LIMIT) -> str:
    """Keep a comment under GitHub's limit, never refused: long tables lose rows to a "… N more
    rows" row, and only then the end goes (markdown_text.fit); the comment says so."""
    return fit(
        body,
        limit,
        "*(The report was cut to fit a GitHub comment; the full report is in the workflow's step summary.)*",
    )


def _message(error: GithubException) -> str:
    return ((error.data or {}).get("message") or "") if isinstance(error.data, dict) else str(error.data or "")


def _transient(error: Exception) -> bool:
    """Worth another try: a 5xx, a rate limit, or no answer at all."""
    if isinstance(error, GithubException):
        if error.status >= 500 or error.status == 429:
            return True
        return error.status == 403 and "rate limit" in _message(error).lower()
    return isinstance(error, requests.RequestException)


def _write(attempt, recover=None):
    """Run a write (POST or PATCH), retrying transient failures. Before each retry, recover()
    (when given) looks for what the failed attempt may have done: a result other than None is
    taken as the write's result, and nothing is sent again."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return attempt()
        except (GithubException, requests.RequestException) as error:
            if not _transient(error) or number == ATTEMPTS:
                raise
            retry_after = getattr(error, "headers", None) and (error.headers or {}).get("retry-after")
            time.sleep(min(float(retry_after), 60) if retry_after and str(retry_after).isdigit() else _delay(number))
            if recover is not None:
                found = _read(recover)
                if found is not None:
                    return found
    raise AssertionError("unreachable")


def _read(call):
    """A read sent as a POST (GraphQL) or a recovery lookup: retried like a GET."""
    for number in range(1, ATTEMPTS + 1):
        try:
            return call()
        except (GithubException, requests.RequestException) as error:
            if not _transient(error) or number == ATTEMPTS:
                raise
            time.sleep(_delay(number))
    raise AssertionError("unreachable")


def _delete(thing) -> None:
    """Delete a comment or an asset; one that is already gone (another run, or a retried DELETE
    whose first attempt went through) is fine."""
    try:
        thing.delete() if hasattr(thing, "delete") else thing.delete_asset()
    except UnknownObjectException:
        pass


def _explain(error: Exception, doing: str, permission: str) -> PublishError:
    if not isinstance(error, GithubException):  # the connection failed, or retries ran out
        reason = error
        while reason.__cause__ is not None or reason.__context__ is not None:
            reason = reason.__cause__ or reason.__context__
        return PublishError(f"could not {doing}: GitHub did not answer after retries ({reason})")
    message = _message(error)
    if _transient(error):
        return PublishError(
            f"could not {doing}: GitHub answered {error.status} {message}".rstrip() + f" on each of {ATTEMPTS} attempts"
        )
    hint = f"; the workflow needs `permissions: {permission}`" if error.status in (401, 403, 404) else ""
    return PublishError(f"could not {doing}: GitHub answered {error.status} {message}".rstrip() + hint)


# --- who the token is


def viewer_login(gh: Github) -> str | None:
    """The login the token writes as, from GraphQL's `viewer`: `github-actions[bot]` for
    GITHUB_TOKEN, `<app-slug>[bot]` for an app's installation token, the owner of a personal
    access token. REST's GET /user would refuse installation tokens; `viewer` answers them all.
    None when GraphQL does not answer (the comment's author then tells, see comment_report)."""
    try:
        _, data = _read(lambda: gh.requester.graphql_query("query { viewer { login } }", {}))
    except (GithubException, requests.RequestException):
        return None
    login = ((data.get("data") or {}).get("viewer") or {}).get("login") if isinstance(data, dict) else None
    return login or None


# --- pull request comments


def _authored_by(comment, login: str) -> bool:
    return comment.user is not None and comment.user.login.lower() == login.lower()


def comment_report(gh: Github, repository: str, number: int, model: str, markdown: str) -> CommentResult:
    """Keep one comment per model on pull request `number` of `repository` (see the module's docstring)."""
    body = fit_comment(f"{marker(model)}\n{markdown}")
    doing = f"comment on pull request #{number}"
    try:
        issue = gh.get_repo(repository, lazy=True).get_issue(number)

        def ours(login: str | None) -> list:
            return [
                c
                for c in issue.get_comments()
                if marker(model) in (c.body or "") and login is not None and _authored_by(c, login)
            ]

        login = viewer_login(gh)
        if login is None:
            # Nobody to recognise: write a new comment, learn who we are from its author, and
            # remove that author's older comments for this model (ours from earlier runs).
            created = _write(
                lambda: issue.create_comment(body),
                recover=lambda: next((c for c in issue.get_comments() if c.body == body), None),
            )
            for older in ours(created.user.login):
                if older.id != created.id:
                    _delete(older)
            return CommentResult("created", created.html_url)

        mine = ours(login)
        if not mine:
            # Before repeating a create whose answer was lost, look for the comment it made.
            created = _write(lambda: issue.create_comment(body), recover=lambda: next(iter(ours(login)), None))
            if created.body == body:
                return CommentResult("created", created.html_url)
            mine = [created]  # another run's comment appeared meanwhile: edit it below
        first, *duplicates = mine
        for duplicate in duplicates:  # e.g. two runs that created at once; keep exactly one
            _delete(duplicate)
        if first.body == body:
            return CommentResult("unchanged", first.html_url)
        _write(lambda: first.edit(body))
        return CommentResult("updated", first.html_url)
    except (GithubException, requests.RequestException) as error:
        raise _explain(error, doing, "pull-requests: write") from error


# --- release assets


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def _lookup_release(repo, tag: str):
    """The tag's release: the published one, else a draft (GET /releases/tags/{tag} does not
    see drafts; the list does). Of several drafts ours (by marker) come first, oldest first, so
    two runs that each made one agree on the same."""
    try:
        return repo.get_release(tag)
    except UnknownObjectException:
        pass
    drafts = [r for r in repo.get_releases() if r.tag_name == tag]
    drafts.sort(key=lambda r: (DRAFT_MARKER not in (r.body or ""), r.id))
    return drafts[0] if drafts else None


def _release_for(repo, event: Event, tag: str):
    """The release to upload to, and whether we created it as a draft to publish afterwards."""
    if event.release_id is not None and event.release_tag_name == tag:
        release = repo.get_release(event.release_id)
        return release, False
    release = _lookup_release(repo, tag)
    if release is None:
        try:
            release = _write(
                lambda: repo.create_git_release(tag=tag, name=tag, message=DRAFT_MARKER, draft=True),
                recover=lambda: _lookup_release(repo, tag),
            )
        except GithubException as error:
            if error.status != 422:
                raise
            # Another run published a release for the tag meanwhile: use it.
            release = _lookup_release(repo, tag)
            if release is None:
                raise
        # Two runs may both have made a draft: settle on the oldest, drop ours if it is not that.
        settled = _lookup_release(repo, tag)
        if settled is not None and settled.id != release.id:
            if release.draft and DRAFT_MARKER in (release.body or ""):
                _delete_release(release)
            release = settled
    return release, bool(release.draft and DRAFT_MARKER in (release.body or ""))


def _delete_release(release) -> None:
    try:
        release.delete_release()
    except UnknownObjectException:
        pass


def upload_release_assets(gh: Github, event: Event, tag: str, files: list[Path]) -> ReleaseResult:
    try:
        repo = gh.get_repo(event.repository, lazy=True)
        release, publish_after = _release_for(repo, event, tag)
        if release.raw_data.get("immutable"):
            raise PublishError(
                f"release {tag} is immutable (published with immutable releases on), so its assets "
                "cannot be added or replaced: run the action on the tag's push instead (it creates a "
                "draft, uploads, then publishes), or upload to a draft with release-tag"
            )
        existing = {asset.name: asset for asset in release.get_assets()}
        _clear_stale_temporaries(existing, {path.name for path in files})
        results = [_put_asset(release, path, existing) for path in files]
        if publish_after:
            _write(
                lambda: release.update_release(
                    name=release.title or tag, message="", draft=False, prerelease=release.prerelease
                )
            )
        return ReleaseResult(release.html_url, results)
    except (GithubException, requests.RequestException) as error:
        raise _explain(error, f"upload assets to release {tag}", "contents: write") from error


def _clear_stale_temporaries(existing: dict, names: set) -> None:
    """Delete what a replacement that died half-way left (a temporary name more than an hour
    old); a younger one may be another run's replacement in progress."""
    now = datetime.datetime.now(datetime.UTC)
    for name, asset in list(existing.items()):
        original = name[len(TEMP_PREFIX) + 9 :] if name.startswith(TEMP_PREFIX) else None
        created = asset.created_at
        if created is not None and created.tzinfo is None:
            created = created.replace(tzinfo=datetime.UTC)
        if original in names and created is not None and now - created > datetime.timedelta(hours=1):
            _delete(asset)
            del existing[name]


def _matches(asset, digest: str, size: int) -> bool:
    """A complete asset with our content. Without a digest (an older GitHub Enterprise Server)
    nothing can be proven equal, so the asset is replaced."""
    if asset is None or asset.state != "uploaded" or asset.size != size:
        return False
    return bool(asset.digest) and asset.digest == digest


def _find_asset(release, name: str):
    return next((a for a in release.get_assets() if a.name == name), None)


def _put_asset(release, path: Path, existing: dict) -> dict:
    digest, size = _sha256(path), path.stat().st_size
    asset = existing.get(path.name)
    if _matches(asset, digest, size):
        return {"name": path.name, "url": asset.browser_download_url, "digest": digest, "status": "unchanged"}
    if asset is not None and asset.state != "uploaded":  # an upload that failed half-way: not a real asset
        _delete(asset)
        asset = None
    if asset is None:
        uploaded = _upload(release, path, path.name, digest, size)
        if uploaded is not None:
            return {"name": path.name, "url": uploaded.browser_download_url, "digest": digest, "status": "uploaded"}
        asset = _find_asset(release, path.name)  # another run uploaded something else under the name
        if _matches(asset, digest, size):
            return {"name": path.name, "url": asset.browser_download_url, "digest": digest, "status": "unchanged"}
    replaced = _replace(release, path, asset, digest, size)
    return {"name": path.name, "url": replaced.browser_download_url, "digest": digest, "status": "replaced"}


def _upload(release, path: Path, name: str, digest: str, size: int):
    """Upload under `name`; None if the name is taken by a different file. A retry first looks
    for what the lost attempt uploaded: complete and ours, it is the result; half-done, it goes."""
    content_type = CONTENT_TYPES.get(path.suffix, "application/octet-stream")

    def recover():
        found = _find_asset(release, name)
        if found is None:
            return None
        if _matches(found, digest, size):
            return found
        if found.state != "uploaded":
            _delete(found)
            return None
        return found  # a different complete file: the 422 below would say the same

    try:
        uploaded = _write(
            lambda: release.upload_asset(str(path), name=name, content_type=content_type), recover=recover
        )
    except GithubException as error:
        errors = (error.data or {}).get("errors", []) if isinstance(error.data, dict) else []
        if error.status == 422 and any(e.get("code") == "already_exists" for e in errors):
            found = _find_asset(release, name)
            return found if _matches(found, digest, size) else None
        raise
    return uploaded if uploaded.name == name and (not uploaded.digest or uploaded.digest == digest) else None


def _replace(release, path: Path, old, digest: str, size: int):
    """Upload the new file under a temporary name, delete the old asset, rename the new one:
    the name lacks an asset only between the delete and the rename, not for a whole upload."""
    temporary = f"{TEMP_PREFIX}{secrets.token_hex(4)}-{path.name}"
    new = _upload(release, path, temporary, digest, size)
    if new is None:
        raise PublishError(f"could not upload {path.name}: the temporary name {temporary} is taken")
    for attempt in range(2):
        if old is not None:
            _delete(old)
        try:
            return _write(
                lambda: new.update_asset(path.name, label=""), recover=lambda: _renamed(release, new.id, path.name)
            )
        except GithubException as error:
            if error.status != 422 or attempt:
                raise
        # Another run put an asset under the name between our delete and our rename.
        old = _find_asset(release, path.name)
        if _matches(old, digest, size):
            _delete(new)
            return old
    raise AssertionError("unreachable")


def _renamed(release, asset_id: int, name: str):
    found = next((a for a in release.get_assets() if a.id == asset_id), None)
    return found if found is not None and found.name == name else None


def pull_request_of_run(gh: Github, repository: str, run: dict) -> int | None:
    """The open pull request a workflow run (a `workflow_run` event's payload) converted: the one
    whose head is the run's head repository, branch and commit, as GitHub reports them (never
    what the run's own artifact says, which the pull request's code wrote). None if none is open."""
    owner = ((run.get("head_repository") or {}).get("owner") or {}).get("login")
    branch, sha = run.get("head_branch"), run.get("head_sha")
    if not (owner and branch and sha):
        return None
    try:
        pulls = _read(
            lambda: list(gh.get_repo(repository, lazy=True).get_pulls(state="open", head=f"{owner}:{branch}"))
        )
    except (GithubException, requests.RequestException) as error:
        raise _explain(error, f"list the pull requests of {owner}:{branch}", "pull-requests: read") from error
    return next((pull.number for pull in pulls if pull.head.sha == sha), None)
