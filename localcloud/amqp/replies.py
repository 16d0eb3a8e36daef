"""Replies of the request/response nodes (`$cbs`, `<entity>/$management`) on the links clients receive them on."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from itertools import count

from proton import Link

from .addresses import link_path


@dataclass
class ReplyLinks:
    """Our sender links of one connection, by node; replies wait for credit in order."""

    _links: dict[str, Link] = field(default_factory=dict)  # node path (lower-case) -> our sender
    _nodes: dict[Link, str] = field(default_factory=dict)
    _pending: dict[str, deque[bytes]] = field(default_factory=dict)
    _tags: count[int] = field(default_factory=count)

    def attach(self, node: str, link: Link) -> None:
        self._links[node.lower()] = link
        self._nodes[link] = node.lower()

    def detach(self, link: Link) -> bool:
        """Forget `link`; False when it was not a reply link."""
        node = self._nodes.pop(link, None)
        if node is None:
            return False
        if self._links.get(node) == link:
            del self._links[node]
        return True

    def flush_link(self, link: Link) -> bool:
        """Send what waits for `link` (it got credit); False when it is not a reply link."""
        node = self._nodes.get(link)
        if node is None:
            return False
        self._flush(node)
        return True

    def send(self, request_node: str, reply_to: str | None, encoded: bytes) -> None:
        """To the link the request's `reply_to` names when there is one, else to the request's node."""
        requested = link_path(reply_to).lower()
        node = requested if requested in self._links else request_node.lower()
        self._pending.setdefault(node, deque()).append(encoded)
        self._flush(node)

    def _flush(self, node: str) -> None:
        link = self._links.get(node)
        queue = self._pending.get(node)
        while link is not None and queue and link.credit > 0:
            delivery = link.delivery(str(next(self._tags)))
            link.send(queue.popleft())
            link.advance()
            delivery.settle()
