"""Send a digest to Slack: the headline as a message, the PDF as a file in its thread."""

from __future__ import annotations

from dataclasses import dataclass

from revtops_kernel.connectors.slack_post import PostedMessage, SlackPoster, UploadedFile
from revtops_kernel.reports.digest import Digest


@dataclass(frozen=True)
class DigestPost:
    message: PostedMessage
    file: UploadedFile


def pdf_filename(digest: Digest) -> str:
    return f"pipeline-digest-{digest.org}-{digest.period.start}-{digest.period.end}.pdf"


def post_digest(poster: SlackPoster, digest: Digest, pdf: bytes, channel: str) -> DigestPost:
    """Post ``digest.slack_text()`` in ``channel`` (name or id), then the PDF in its thread."""
    message = poster.post_message(channel, digest.slack_text())
    uploaded = poster.upload_file(
        message.channel_id,
        pdf,
        pdf_filename(digest),
        title=digest.title,
        initial_comment="The full digest (PDF): charts, and the deals behind every number.",
        thread_ts=message.ts,
    )
    return DigestPost(message, uploaded)
