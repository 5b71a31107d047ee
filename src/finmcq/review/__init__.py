"""Human review of a run: a local web page over the run's store, and the decisions it records.

* :mod:`finmcq.review.decisions` — the review tables (a small migration run on open), the audit
  trail of actions, and :class:`ReviewDecisions`, the input ``finmcq build`` consults so a rerun
  honours the review. No web dependency: the pipeline imports only this module.
* :mod:`finmcq.review.edits` — an edit re-checked by the deterministic checks of ``checks.py``.
* :mod:`finmcq.review.index` / :mod:`finmcq.review.queries` — an indexed table of the latest
  build's delivered and dropped items, and the filtered, keyset-paged queries the page runs.
* :mod:`finmcq.review.app` — the Starlette app (Jinja2 templates, a small fetch script), served
  by uvicorn.
"""
