"""Each attempt's log: ``xmen.log`` is the latest attempt's, ``logs/attempt-N.log`` the earlier ones'."""
from __future__ import annotations

import os

from xmen.errors import LinkError
from xmen.store.layout import LOGS_DIR, RUN_LOG


#: How many attempts ``_attempts`` in params.yml keeps (the oldest are dropped).
ATTEMPTS_KEPT = 20


def keep_previous_log(exp_dir: str | os.PathLike[str]) -> str | None:
    """Move the previous attempt's ``xmen.log`` to ``logs/attempt-N.log`` before a new attempt overwrites it;
    keeps the newest ``ATTEMPTS_KEPT``. The new path, or None when there was no log."""
    log = os.path.join(os.fspath(exp_dir), RUN_LOG)
    folder = os.path.join(os.fspath(exp_dir), LOGS_DIR)
    for own in (log, folder):  # the attempt's output goes to xmen.log: never into what a link there points to
        if os.path.islink(own):
            raise LinkError.at(own)
    if not os.path.exists(log):
        return None
    os.makedirs(folder, exist_ok=True)
    numbers = sorted(
        int(name[8:-4]) for name in os.listdir(folder)
        if name.startswith("attempt-") and name.endswith(".log") and name[8:-4].isdigit()
    )
    target = os.path.join(folder, f"attempt-{(numbers[-1] if numbers else 0) + 1}.log")
    os.replace(log, target)
    for old in numbers[: max(0, len(numbers) + 1 - ATTEMPTS_KEPT)]:
        try:
            os.unlink(os.path.join(folder, f"attempt-{old}.log"))
        except OSError:
            pass
    return target
