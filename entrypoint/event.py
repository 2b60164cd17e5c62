"""What triggered the workflow, from GITHUB_EVENT_NAME and the payload at GITHUB_EVENT_PATH (see runner.py)."""

from __future__ import annotations

import dataclasses
import os

from . import runner  # each runner variable or file that is missing is a notice, not a crash


@dataclasses.dataclass(frozen=True)
class Event:
    name: str
    payload: dict
    repository: str  # owner/name

    @classmethod
    def from_environment(cls) -> Event:
        name, payload = runner.event_name(), runner.event_payload()
        repository = os.environ.get("GITHUB_REPOSITORY") or payload.get("repository", {}).get("full_name", "")
        return cls(name, payload, repository)

    @property
    def pull_request(self) -> dict | None:
        return self.payload.get("pull_request") if self.name in ("pull_request", "pull_request_target") else None

    @property
    def pull_request_number(self) -> int | None:
        return self.pull_request["number"] if self.pull_request else None

    @property
    def from_fork(self) -> bool:
        """A pull request whose head lives in another repository: its token cannot write here."""
        if not self.pull_request:
            return False
        head_repo = (self.pull_request.get("head") or {}).get("repo") or {}
        return head_repo.get("full_name") != self.payload.get("repository", {}).get("full_name")

    @property
    def fork_code_with_write_token(self) -> bool:
        """A fork's code may be checked out while the token can write here: a fork's pull request
        under pull_request_target, or a workflow_run of a fork's run (its head elsewhere)."""
        if self.name == "pull_request_target":
            return self.from_fork
        if self.name == "workflow_run":
            run = self.payload.get("workflow_run") or {}
            head = (run.get("head_repository") or {}).get("full_name")
            return bool(head) and head != self.payload.get("repository", {}).get("full_name")
        return False

    def release_tag(self, override: str = "") -> str | None:
        """The tag to publish to: the input (on any event but a pull request's, whose code is not
        reviewed yet), a published release's, or a pushed (not deleted) tag."""
        if self.pull_request is not None:
            return None
        if override:
            return override
        if self.release_tag_name:
            return self.release_tag_name
        ref = self.payload.get("ref") or os.environ.get("GITHUB_REF", "")
        if self.name == "push" and ref.startswith("refs/tags/") and not self.payload.get("deleted"):
            return ref[len("refs/tags/") :]
        return None

    @property
    def release_tag_name(self) -> str | None:
        """The tag of the release a `release: published` event is about."""
        if self.name == "release" and self.payload.get("action") == "published":
            return self.payload["release"]["tag_name"]
        return None

    @property
    def release_id(self) -> int | None:
        """The id of the release a `release: published` event is about (it may be a draft's tag
        that GET /releases/tags cannot see, so the id is the reliable handle)."""
        if self.name == "release" and self.payload.get("action") == "published":
            return self.payload["release"]["id"]
        return None
