"""A fake OpenAI-compatible LLM server that speaks finmcq's stage contract.

Every LLM stage of finmcq is tested against it over real HTTP. See :mod:`finmcq.fake.app` for
the endpoints, :mod:`finmcq.fake.server` for running it (``serve``, ``FakeLLMServer``),
:mod:`finmcq.fake.replies` for how replies (and the verify agreement) work, and
:mod:`finmcq.fake.defects` for defect mode, which corrupts a known share of answers on purpose.
"""

from finmcq.fake.config import DEFAULT_MODELS, FakeConfig, add_fake_arguments, config_from_args
from finmcq.fake.defects import DEFECT_KINDS, item_fingerprint, solution_fingerprint
from finmcq.fake.replies import option_code, stem_figures
from finmcq.fake.server import FakeLLMServer, create_app, serve

__all__ = [
    "DEFAULT_MODELS",
    "DEFECT_KINDS",
    "FakeConfig",
    "FakeLLMServer",
    "add_fake_arguments",
    "config_from_args",
    "create_app",
    "item_fingerprint",
    "option_code",
    "serve",
    "solution_fingerprint",
    "stem_figures",
]
