"""The local cloud's entry points, as other code imports them (kept here so their imports stay put):

    local_cloud(), LocalCloud, post_json   localcloud.cloud         everything on free ports for one `with` block
    app_settings, FUNCTION_KEY, MASTER_KEY localcloud.app_settings  the settings that point the app at it
    trusting                               localcloud.trust         trust the local CA in this process
    REPO_ROOT                              localcloud.paths

`python -m localcloud up|status|down` lives in localcloud.up.
"""

from __future__ import annotations

from localcloud.app_settings import FUNCTION_KEY, MASTER_KEY, app_settings
from localcloud.cloud import LocalCloud, local_cloud, post_json
from localcloud.paths import REPO_ROOT
from localcloud.trust import trusting

__all__ = [
    "FUNCTION_KEY",
    "MASTER_KEY",
    "REPO_ROOT",
    "LocalCloud",
    "app_settings",
    "local_cloud",
    "post_json",
    "trusting",
]
