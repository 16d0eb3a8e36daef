"""What every emulator process shares: fault switches, the admin API and its client, the command-line
flags, the READY line, the listeners, and the launcher that spawns an emulator and waits for it.

    faults.py        Faults: refuse new connections, delay dispositions
    control.py       EmulatorControl: what the admin API asks of an emulator
    admin_api.py     the admin routes every emulator serves (aiohttp)
    admin_client.py  AdminClient: their blocking Python client (stdlib only)
    listeners.py     TCP/TLS servers and aiohttp apps on (possibly free) ports, closed together
    ready.py         the READY line: one JSON line with the bound ports and the masked connection string
    cli.py           the shared flags, the banner (keys masked) and the run-until-signalled loop
    launcher.py      spawn `python -m localcloud <service>`, wait for READY, stop
"""
