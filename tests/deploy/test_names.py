"""The topic, subscriptions and queues the template creates are the ones the code, its function.json,
the README and the local emulator (what the e2e tests run against) use."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from deploy.checks import names
from deploy.checks.bicep import BicepFile
from deploy.checks.paths import README, REPO_ROOT, InfraEditor

EMULATOR_CONFIG = REPO_ROOT / "localcloud" / "servicebus" / "default_config.json"


def check(files: Mapping[Path, BicepFile]) -> list[str]:
    topic = names.code_constant(REPO_ROOT / "c2d" / "config.py", "DEFAULT_OUTCOME_TOPIC")
    queue = json.loads((REPO_ROOT / "SendC2DQueue" / "function.json").read_text())["bindings"][0]["queueName"]
    return names.check_topology(
        names.template_topology(files), topic, queue,
        names.emulator_topology(EMULATOR_CONFIG), names.readme_subscriptions(README.read_text()),
    )


def test_topic_subscriptions_and_queues_match_code_readme_and_emulator(infra: Mapping[Path, BicepFile]) -> None:
    assert names.template_topology(infra)["subscriptions"] == {
        "all": "", "failed": "status <> 'Success'", "succeeded": "status = 'Success'",
    }
    assert check(infra) == []


def test_a_renamed_topic_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("main.bicep", "var outcomeTopicName = 'c2d-outcomes'", "var outcomeTopicName = 'outcomes'")
    assert check(files) == ["topic ['outcomes'] is not the code's default 'c2d-outcomes'"]


def test_a_filter_that_differs_from_the_readme_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("core/servicebus.bicep", "filter: 'status = \\'Success\\''", "filter: 'status == \\'Success\\''")
    problems = check(files)
    assert len(problems) == 2 and "differ from the emulator's" in problems[0] and "differ from the README's" in problems[1]


def test_a_filter_rule_added_beside_the_match_all_rule_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("core/servicebus.bicep", "  name: '$Default'\n", "  name: 'only-failures'\n")
    assert check(files) == [
        "a filter rule must be named '$Default' to replace the match-all rule, got ['only-failures']"
    ]


def test_a_missing_poison_queue_is_reported(seeded_infra: InfraEditor) -> None:
    files = seeded_infra("core/storage.bicep", "name: '${requestQueueName}-poison'", "name: '${requestQueueName}-failed'")
    assert check(files) == ["queues ['c2d-requests', 'c2d-requests-failed'] are not 'c2d-requests' and its poison queue"]
