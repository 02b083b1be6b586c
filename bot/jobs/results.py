"""What a job ends with: one typed result that the store keeps as JSON and the reporter
renders as the check run's conclusion."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from deploy.model import OperationResult


@dataclass(frozen=True)
class JobResult:
    conclusion: str  # a check run conclusion: success, failure, neutral, cancelled
    title: str
    summary: str = ""
    log: str = ""
    hub_url: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> JobResult | None:
        """A stored result; rows written before results were typed read the same way."""
        if not isinstance(data, dict):
            return None
        hub_url = data.get("hub_url")
        return cls(
            conclusion=str(data.get("conclusion") or "success"),
            title=str(data.get("title") or "Done"),
            summary=str(data.get("summary") or ""),
            log=str(data.get("log") or ""),
            hub_url=hub_url if isinstance(hub_url, str) else None,
        )

    @classmethod
    def of(cls, result: OperationResult, *, log: str = "", extra_summary: str = "") -> JobResult:
        """An engine operation's result, with the job's own log and any summary to add."""
        summary = result.summary + (f"\n\n{extra_summary}" if extra_summary else "")
        return cls(result.conclusion, result.title, summary, log or result.log, result.hub_url)

    @property
    def ok(self) -> bool:
        return self.conclusion in ("success", "neutral")
