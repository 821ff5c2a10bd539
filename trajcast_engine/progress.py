"""Progress bars for long runs (simulation, reference MD, training), on stderr.

On a terminal the bar redraws at most twice a second; when stderr is a file or a pipe
(a batch job's log) it writes one line a minute instead of one per step, so a
100,000-step run leaves a readable log rather than megabytes of carriage returns.
"""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(total: int, desc: str, unit: str = "step") -> Any:
    """A ``tqdm`` bar over ``total`` units, throttled for terminals and log files.

    Set its postfix with ``bar.set_postfix_str(text, refresh=False)``: the text shows at
    the next redraw instead of forcing one per call.
    """
    from tqdm import tqdm

    terminal = sys.stderr.isatty()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        dynamic_ncols=terminal,
        mininterval=0.5 if terminal else 60.0,
        maxinterval=10.0 if terminal else 600.0,
        ascii=not terminal,
        file=sys.stderr,
    )
