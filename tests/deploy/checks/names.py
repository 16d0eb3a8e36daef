"""Names the code, the README, the local Service Bus emulator and the template must agree on: the
outcome topic, its subscriptions and filters, the request queue and its poison queue."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping
from pathlib import Path

from deploy.checks.bicep import BicepFile, file_named, literal_values, unquote


def code_constant(module: Path, name: str) -> str:
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{module} defines no {name}")


def template_topology(files: Mapping[Path, BicepFile]) -> dict[str, object]:
    """Topic, duplicate detection, subscription -> SQL filter ('' = all), queue names, as deployed."""
    sb = file_named(files, "servicebus.bicep")
    (topic,) = sb.resources_of_type("Microsoft.ServiceBus/namespaces/topics")
    subscriptions: dict[str, str] = {}
    for resource in sb.resources_of_type("Microsoft.ServiceBus/namespaces/topics/subscriptions"):
        if resource.loop is None:
            for name in literal_values(files, sb, resource.body["name"]):
                subscriptions[name] = ""
        else:  # [for s in <array>: {name: s.name}] with rules [for (s, i) in <array>: {sqlExpression: s.filter}]
            items = sb.variables[resource.loop["detail"]["array_name"]]["value"]
            for item in items:
                subscriptions[item["name"]] = unquote(f"'{item['filter']}'")
    rules = sb.resources_of_type("Microsoft.ServiceBus/namespaces/topics/subscriptions/rules")
    storage = file_named(files, "storage.bicep")
    queues = {
        name
        for queue in storage.resources_of_type("Microsoft.Storage/storageAccounts/queueServices/queues")
        for name in literal_values(files, storage, queue.body["name"])
    }
    return {
        "topic": literal_values(files, sb, topic.body["name"]),
        "duplicate_detection": topic.properties.get("requiresDuplicateDetection"),
        "subscriptions": subscriptions,
        "filter_rule_names": {r.body["name"] for r in rules},
        "filter_types": {r.properties.get("filterType") for r in rules},
        "queues": queues,
    }


def emulator_topology(config: Path) -> dict[str, object]:
    """The same from the Service Bus emulator's Config.json (what the e2e tests run against)."""
    (namespace,) = json.loads(config.read_text())["UserConfig"]["Namespaces"]
    (topic,) = namespace["Topics"]
    subscriptions = {}
    for subscription in topic["Subscriptions"]:
        sql = [r["Properties"]["SqlFilter"]["SqlExpression"] for r in subscription.get("Rules", [])]
        subscriptions[subscription["Name"]] = sql[0] if sql else ""
    return {"topic": topic["Name"], "duplicate_detection": topic["Properties"]["RequiresDuplicateDetection"],
            "subscriptions": subscriptions}


def readme_subscriptions(readme: str) -> dict[str, str]:
    """The Deploy section's subscription table: `name` | `filter` or 'everything'."""
    section = re.search(r"^## Deploy\n(.*?)(?=^## )", readme, re.S | re.M)
    if not section:
        raise AssertionError("README.md has no '## Deploy' section")
    found = {}
    for line in section.group(1).splitlines():
        match = re.match(r"^\| `([a-z-]+)` \| (?:`([^`]*)`|everything) \|", line)
        if match:
            found[match.group(1)] = match.group(2) or ""
    return found


def check_topology(template: Mapping[str, object], expected_topic: str, expected_queue: str,
                   emulator: Mapping[str, object], readme: Mapping[str, str]) -> list[str]:
    problems = []
    if template["topic"] != {expected_topic}:
        problems.append(f"topic {sorted(template['topic'])} is not the code's default {expected_topic!r}")
    if template["duplicate_detection"] is not True:
        problems.append("duplicate detection must be on: outcomes are re-published with the same message id")
    if template["subscriptions"] != emulator["subscriptions"]:
        problems.append(f"subscriptions {template['subscriptions']} differ from the emulator's {emulator['subscriptions']}")
    if template["subscriptions"] != readme:
        problems.append(f"subscriptions {template['subscriptions']} differ from the README's {readme}")
    if template["filter_rule_names"] - {"$Default"}:
        problems.append("a filter rule must be named '$Default' to replace the match-all rule, "
                        f"got {sorted(template['filter_rule_names'])}")
    if template["filter_types"] - {"SqlFilter"}:
        problems.append(f"filter types must be SqlFilter, got {template['filter_types']}")
    if template["queues"] != {expected_queue, f"{expected_queue}-poison"}:
        problems.append(f"queues {sorted(template['queues'])} are not {expected_queue!r} and its poison queue")
    return problems
