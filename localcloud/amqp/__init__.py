"""One AMQP 1.0 engine for both emulators, on python-qpid-proton: a service supplies an `AmqpService`
(its `LinkHandler`, token validator, SASL mechanisms, what a token's expiry does) and gets
connections, SASL, CBS with token expiry, `$management` plumbing and error conditions.

    service.py     AmqpService: what a service plugs in; FaultSwitches: the faults the engine honours
    links.py       LinkHandler and ServiceConnection (the seam); open_link, refuse_link, settle helpers
    endpoint.py    AmqpEndpoint: accepts sockets and byte streams, drops them, re-checks tokens
    connection.py  AmqpConnection: one connection, sans I/O
    sasl.py        server-side SASL (ANONYMOUS, PLAIN, MSSBCBS)
    cbs.py         the $cbs put-token node
    tokens.py      Authorization, TokenPolicy, ExpiryAction, a connection's tokens and their expiry
    management.py  $management requests and replies
    replies.py     reply links of the request/response nodes
    errors.py      error conditions (with tracking ids)
    addresses.py   link addresses -> paths

`make test` checks this package with `mypy --strict`.
"""
