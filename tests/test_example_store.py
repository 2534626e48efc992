"""The documentation's example store (docs/examples/mapping_store.py) keeps
the store contract: the public suite runs against it here, as a store
author's own tests would, so the example cannot rot."""
from mapping_store import MappingUploadProgressStore

from pyramid_upload_progress.testing import Backend, FakeClock, StoreContract


class TestExampleStore(StoreContract):
    def make_backend(self, *, timeout, stall_timeout, max_uploads):
        clock = FakeClock()
        store = MappingUploadProgressStore(timeout=timeout, stall_timeout=stall_timeout,
                                           clock=clock)
        return Backend(store, clock.advance, clock)

    def test_the_suite_runs_against_the_example(self, store):
        assert isinstance(store, MappingUploadProgressStore)
