"""The READY line both emulators print: bound ports, the masked connection string, read back by launchers."""

from __future__ import annotations

from localcloud.emulator.ready import find_ready, parse_ready_line, ready_line


def test_ports_and_a_masked_connection_string_round_trip() -> None:
    line = ready_line(
        "iothub", {"amqp": 5671, "connect_proxy": 18883}, "HostName=h;SharedAccessKeyName=p;SharedAccessKey=c2VjcmV0"
    )
    assert line.startswith("READY {") and "c2VjcmV0" not in line
    assert '"amqpPort": 5671' in line and '"connectProxyPort": 18883' in line
    info = parse_ready_line(line)
    assert info is not None
    assert (info.service, info.ports) == ("iothub", {"amqp": 5671, "connect_proxy": 18883})
    assert info.connection_string == "HostName=h;SharedAccessKeyName=p;SharedAccessKey=***"


def test_the_ready_line_is_found_among_other_output() -> None:
    log = "starting\nwarning: something\n" + ready_line("servicebus", {"amqp": 1, "amqps": 2}, "Endpoint=sb://x") + "\n"
    info = find_ready(log)
    assert info is not None and info.ports == {"amqp": 1, "amqps": 2}
    assert find_ready("READYish but not the line\n") is None
