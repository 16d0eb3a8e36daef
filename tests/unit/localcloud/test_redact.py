"""Keys are masked in what the local tools print, and can be put back by whoever knows them."""

from __future__ import annotations

from localcloud.redact import redact_keys, with_key

HUB = "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0LWtleQ=="
STORAGE = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5/+=;QueueEndpoint=http://x/"


def test_shared_access_key_and_account_key_are_masked() -> None:
    assert redact_keys(HUB) == "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=***"
    masked = redact_keys(STORAGE)
    assert "a2V5" not in masked and "AccountKey=***;QueueEndpoint=http://x/" in masked


def test_key_name_is_kept() -> None:
    assert "SharedAccessKeyName=iothubowner" in redact_keys(HUB)


def test_with_key_restores_the_masked_string() -> None:
    assert with_key(redact_keys(HUB), "c2VjcmV0LWtleQ==") == HUB
    assert with_key(redact_keys(STORAGE), "a2V5/+=") == STORAGE
