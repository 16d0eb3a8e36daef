"""Where the local cloud lives on disk: the repository, and `.localcloud/` (certificates, `make up` state)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STATE_DIR = REPO_ROOT / ".localcloud"  # certificates, Azurite data, `make up` runtime files (git-ignored)
RUN_DIR = STATE_DIR / "run"  # `make up`: pids, logs, connection strings, app settings
