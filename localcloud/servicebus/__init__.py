"""Local Service Bus emulator (dev only): the unmodified azure-servicebus SDK, sync and aio, works against it.

Run:   python -m localcloud servicebus [--amqp-port 5672] [--amqps-port N] [--admin-port 5673]
                                       [--config Config.json] [--key KEY | env SERVICEBUS_EMULATOR_KEY]
                                       [--data-file state.sqlite] [flags of every emulator]
Connect with: Endpoint=sb://localhost:<port>;SharedAccessKeyName=RootManageSharedAccessKey;
              SharedAccessKey=<key>;UseDevelopmentEmulator=true
       or, over TLS: see localcloud/README.md ("Service Bus over TLS").
Tests:  localcloud.servicebus.launcher.running_servicebus() spawns it on free ports.

Modules, one job each:
  config.py       Microsoft emulator `Config.json` shape -> dataclasses (default: default_config.json)
  sqlfilter.py    SQL filter grammar (lark) and three-valued evaluator; rules.py adds correlation filters
  message.py      AMQP sections via proton's codec: batch split, lazy decoding, delivery encoding
  store.py        one queue/subscription/DLQ: available, locked, deferred, scheduled; locks, TTL, DLQ
  namespace.py    the entities: lookup, duplicate detection, topic fan-out, restore from disk
  persistence.py  optional SQLite journal, committed before anything is acknowledged
  tokens.py       SAS tokens (CBS put-token) and SASL PLAIN -> what they authorise
  links.py        the LinkHandler on the shared AMQP engine (localcloud.amqp): senders into entities,
                  receivers out of them, $management requests
  consumers.py    receivers: credit, round-robin, drain, settlement echo
  management.py   $management operations (renew-lock, update-disposition, peek, schedule, cancel,
                  receive-by-sequence-number)
  admin.py        its admin routes and client (the shared ones: localcloud.emulator)
  emulator.py     ServiceBusEmulator: the Python API (start/stop, ports, controls); cli.py: the command line
  launcher.py     spawn it as a subprocess and wait for READY (tests, benchmarks, the local cloud)

Not emulated: sessions (RequiresSession), auto-forwarding, rule management over AMQP, the
ATOM/HTTP management API (ServiceBusAdministrationClient), transactions, AMQP over WebSockets.
"""
