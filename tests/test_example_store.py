"""The documentation's example store (docs/examples/mapping_store.py) keeps
the store contract: the shared suite runs against it here, so the example
cannot rot."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "docs" / "examples"))

from mapping_store import MappingUploadProgressStore  # noqa: E402

from .stores import Backend, FakeClock  # noqa: E402
from .test_store_contract import *  # noqa: E402,F401,F403  (every contract test)
from .test_store_contract import TIMEOUT, STALL_TIMEOUT  # noqa: E402


@pytest.fixture
def backend() -> Backend:
    clock = FakeClock()
    store = MappingUploadProgressStore(timeout=TIMEOUT, stall_timeout=STALL_TIMEOUT,
                                       clock=clock)
    return Backend(store, clock.advance, clock)


def test_the_suite_runs_against_the_example(store):
    assert isinstance(store, MappingUploadProgressStore)
