"""Local Service Bus emulator (dev only): the unmodified azure-servicebus SDK, sync and aio, works against it.

Run:   python -m localcloud servicebus [--port 5672] [--admin-port 5673] [--config Config.json]
                                       [--key KEY | env SERVICEBUS_EMULATOR_KEY] [--data-file state.sqlite]
Connect with: Endpoint=sb://localhost:<port>;SharedAccessKeyName=RootManageSharedAccessKey;
              SharedAccessKey=<key>;UseDevelopmentEmulator=true
Tests:  localcloud.servicebus.testing.start_emulator() starts it as a subprocess on free ports.

Modules, one job each:
  config.py       Microsoft emulator `Config.json` shape -> dataclasses (default: default_config.json)
  sqlfilter.py    SQL filter grammar (lark) and three-valued evaluator; rules.py adds correlation filters
  message.py      AMQP sections via proton's codec: batch split, lazy decoding, delivery encoding
  store.py        one queue/subscription/DLQ: available, locked, deferred, scheduled; locks, TTL, DLQ
  broker.py       the namespace: entity lookup, duplicate detection, topic fan-out, restore from disk
  persistence.py  optional SQLite journal, committed before anything is acknowledged
  auth.py         SAS token checking for CBS put-token
  engine.py       one AMQP connection: proton Transport/Connection/Collector driven by asyncio
  amqp_server.py  CBS, senders, consumers (credit, drain, settlement echo), $management replies
  management.py   $management operations (renew-lock, update-disposition, peek, schedule, cancel,
                  receive-by-sequence-number)
  admin.py        admin HTTP API + blocking client (health, entity state, drop/refuse connections)
  server.py       ServiceBusEmulator: the Python API (start/stop, faults); cli.py: the command line

Not emulated: sessions (RequiresSession), auto-forwarding, rule management over AMQP, the
ATOM/HTTP management API (ServiceBusAdministrationClient), transactions, AMQP over WebSockets/TLS.
"""
