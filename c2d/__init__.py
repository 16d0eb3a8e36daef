"""c2d: the library behind the c2d-functions app.

Function folders are thin adapters; every decision lives here. Importing this package creates no
client and opens no connection (clients are created lazily by `c2d.clients`).
"""
