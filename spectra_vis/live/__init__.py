"""Live runs: captures run on request, queued on one warm model, streamed step by step as events.

Stage: above ``capturing`` (it runs ``Session``) and ``store``; imports no web package, so the
server's routes stay thin and the run logic is testable without HTTP.
"""

from spectra_vis.live.manager import Run, RunControl, RunManager, RunRequest
from spectra_vis.live.stream import EventLog, Subscriber

__all__ = ["EventLog", "Run", "RunControl", "RunManager", "RunRequest", "Subscriber"]
