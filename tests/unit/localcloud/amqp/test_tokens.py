"""A connection's CBS tokens: renewal per audience, the lifetime cap, expiry, the links each authorised."""

from __future__ import annotations

import math

from localcloud.amqp.tokens import Authorization, ConnectionTokens, TokenPolicy

ENFORCED = TokenPolicy()
HUB = Authorization(audience="myhub", scope="", expires_at=1_100.0)


def link(name: str) -> object:
    return type("FakeLink", (), {"name": name})()  # the table only keys on link identity


def test_a_second_token_for_the_audience_renews_the_first() -> None:
    tokens = ConnectionTokens()
    assert tokens.put(HUB, 1_000.0, ENFORCED) is False
    assert tokens.put(Authorization("myhub", "", 1_200.0), 1_050.0, ENFORCED) is True
    assert tokens.next_expiry() == 1_200.0
    assert tokens.pop_expired(1_150.0) == []  # the renewed token still holds


def test_the_lifetime_cap_makes_a_token_expire_earlier() -> None:
    tokens = ConnectionTokens()
    tokens.put(Authorization("ns/queue", "queue", 4_600.0), 1_000.0, TokenPolicy(max_lifetime_s=2))
    assert tokens.next_expiry() == 1_002.0


def test_expiry_returns_the_links_the_token_authorised() -> None:
    tokens = ConnectionTokens()
    tokens.put(Authorization("ns/a", "a", 1_010.0), 1_000.0, ENFORCED)
    tokens.put(Authorization("ns/b", "b", 1_020.0), 1_000.0, ENFORCED)
    sender, receiver, other = link("s"), link("r"), link("o")
    for each, path in ((sender, "a"), (receiver, "a/subscriptions/x"), (other, "b")):
        record = tokens.covering(path, 1_001.0, ENFORCED)
        assert record is not None
        tokens.bind(each, record)  # type: ignore[arg-type]
    [(record, links)] = tokens.pop_expired(1_010.0)
    assert record.authorization.audience == "ns/a" and links == [sender, receiver]
    assert tokens.covering("a", 1_010.0, ENFORCED) is None
    assert tokens.next_expiry() == 1_020.0


def test_scope_covers_its_path_and_below_only() -> None:
    grant = Authorization("ns/topic", "topic", math.inf)
    assert grant.covers("Topic") and grant.covers("topic/Subscriptions/all")
    assert not grant.covers("topic2") and not grant.covers("other")
    assert Authorization("hub", "", math.inf).covers("messages/devicebound")


def test_without_enforcement_an_expired_token_still_covers() -> None:
    tokens = ConnectionTokens()
    tokens.put(HUB, 1_000.0, ENFORCED)
    assert tokens.covering("messages/devicebound", 2_000.0, ENFORCED) is None
    assert tokens.covering("messages/devicebound", 2_000.0, TokenPolicy(enforce_expiry=False)) is not None
