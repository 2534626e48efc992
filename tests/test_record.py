"""UploadRecord and the one function that renders it as the UPLOAD mapping."""
from __future__ import annotations

import json

import pytest

from pyramid_upload_progress.record import (
    UploadRecord,
    can_cancel,
    poll_answer,
    progressed,
    render_starting,
    render_upload,
    replaces,
)

FIELDS = {"id", "state", "received", "size", "percent", "rate", "eta",
          "started", "finished", "path", "status", "cancelled", "files", "stage"}
STARTED = 1_700_000_000.0
STALL_TIMEOUT = 3600.0


def record(**changes) -> UploadRecord:
    values = dict(key="s3cr3t-store-key", id="abc", path="/upload", size=1000,
                  started=STARTED, updated=STARTED)
    values.update(changes)
    return UploadRecord(**values)


def finished(status=200, failed=False, received=1000, after=10.0, **changes):
    return record(received=received, finished=STARTED + after, updated=STARTED + after,
                  status=status, failed=failed, **changes)


# -- the fields ---------------------------------------------------------------

def test_rendered_upload_has_exactly_the_contracts_fields():
    assert set(render_upload(record(received=10), STARTED + 1)) == FIELDS


def test_rendered_finished_upload_has_exactly_the_contracts_fields():
    assert set(render_upload(finished(), STARTED + 20)) == FIELDS


def test_rendered_upload_shows_no_store_key_and_no_owner():
    upload = record(owner="alice", owner_known=True, received=10)
    values = json.dumps(render_upload(upload, STARTED + 1))
    assert "s3cr3t-store-key" not in values
    assert "alice" not in values


def test_rendered_upload_is_json_serialisable():
    rendered = render_upload(finished(), STARTED + 20)
    assert json.loads(json.dumps(rendered)) == rendered


def test_rendered_upload_carries_the_records_values():
    rendered = render_upload(finished(status=201, received=1000, id="up-1",
                                      path="/files"), STARTED + 20)
    assert rendered["id"] == "up-1"
    assert rendered["received"] == 1000
    assert rendered["size"] == 1000
    assert rendered["started"] == STARTED
    assert rendered["finished"] == STARTED + 10
    assert rendered["path"] == "/files"
    assert rendered["status"] == 201


def test_upload_without_a_client_id_renders_id_null():
    assert render_upload(record(id=None), STARTED + 1)["id"] is None


# -- states -------------------------------------------------------------------

def test_unfinished_upload_is_uploading():
    rendered = render_upload(record(received=10), STARTED + 1)
    assert rendered["state"] == "uploading"
    assert rendered["finished"] is None
    assert rendered["status"] is None


@pytest.mark.parametrize("status", [200, 201, 204, 301, 302, 303])
def test_upload_answered_2xx_or_3xx_is_done(status):
    assert render_upload(finished(status=status), STARTED + 20)["state"] == "done"


@pytest.mark.parametrize("status", [400, 403, 404, 413, 500, 503])
def test_upload_answered_4xx_or_5xx_is_error(status):
    assert render_upload(finished(status=status), STARTED + 20)["state"] == "error"


def test_upload_that_ended_in_an_exception_is_error():
    rendered = render_upload(finished(status=None, failed=True), STARTED + 20)
    assert rendered["state"] == "error"
    assert rendered["status"] is None


def test_finished_upload_without_status_is_error():
    assert render_upload(finished(status=None), STARTED + 20)["state"] == "error"


def test_failed_upload_is_error_whatever_its_status():
    # A client that disconnected, though the app still answered 200.
    rendered = render_upload(finished(status=200, failed=True, received=300),
                             STARTED + 20)
    assert rendered["state"] == "error"


# -- percent --------------------------------------------------------------------

def test_percent_is_received_over_size():
    assert render_upload(record(received=250), STARTED + 1)["percent"] == 25.0


def test_percent_of_a_complete_upload_is_100():
    assert render_upload(finished(), STARTED + 20)["percent"] == 100.0


def test_percent_is_null_for_a_chunked_upload():
    rendered = render_upload(record(size=None, received=250), STARTED + 1)
    assert rendered["percent"] is None
    assert rendered["size"] is None


def test_percent_stays_within_0_and_100():
    rendered = render_upload(record(size=3, received=1), STARTED + 1)
    assert 0 <= rendered["percent"] <= 100
    assert rendered["percent"] == pytest.approx(100 / 3, abs=0.01)


# -- rate and eta -------------------------------------------------------------

def test_rate_is_received_over_elapsed_time():
    rendered = render_upload(record(received=400), STARTED + 4)
    assert rendered["rate"] == pytest.approx(100.0)


def test_rate_of_a_finished_upload_is_measured_to_its_end():
    upload = finished(received=1000, after=10.0)
    assert render_upload(upload, STARTED + 10)["rate"] == pytest.approx(100.0)
    assert render_upload(upload, STARTED + 200)["rate"] == pytest.approx(100.0)


def test_rate_is_null_when_no_time_has_passed():
    assert render_upload(record(received=0), STARTED)["rate"] is None


def test_rate_of_a_chunked_upload_is_known():
    rendered = render_upload(record(size=None, received=300), STARTED + 3)
    assert rendered["rate"] == pytest.approx(100.0)


def test_eta_is_what_is_left_at_the_average_rate():
    rendered = render_upload(record(received=400), STARTED + 4)  # 100 B/s
    assert rendered["eta"] == pytest.approx(600 / 100)


def test_eta_of_a_done_upload_is_zero():
    assert render_upload(finished(), STARTED + 20)["eta"] == 0


def test_eta_is_null_for_a_chunked_upload():
    assert render_upload(record(size=None, received=400), STARTED + 4)["eta"] is None


def test_eta_is_null_before_any_byte_arrived():
    assert render_upload(record(received=0), STARTED + 4)["eta"] is None


def test_eta_is_null_when_no_time_has_passed():
    assert render_upload(record(received=0), STARTED)["eta"] is None


def test_eta_of_a_failed_upload_is_null():
    upload = finished(status=None, failed=True, received=300)
    assert render_upload(upload, STARTED + 20)["eta"] is None


# -- starting -----------------------------------------------------------------

def test_starting_answer_has_exactly_the_contracts_fields():
    assert set(render_starting("abc")) == FIELDS


def test_starting_answer_names_the_id_and_nothing_else():
    rendered = render_starting("abc")
    assert rendered["id"] == "abc"
    assert rendered["state"] == "starting"
    assert rendered["received"] == 0
    assert rendered["cancelled"] is False
    assert {name for name, value in rendered.items() if value is None} == (
        FIELDS - {"id", "state", "received", "cancelled"})


# -- the stall rule -----------------------------------------------------------

def test_upload_within_stall_timeout_is_shown_as_it_is():
    upload = record(received=10, updated=STARTED + 5)
    seen = upload.as_of(STARTED + 5 + STALL_TIMEOUT - 1, STALL_TIMEOUT)
    assert seen.state == "uploading"
    assert seen.finished is None
    assert not seen.failed


def test_upload_silent_for_stall_timeout_is_shown_failed_as_of_its_stall():
    upload = record(received=10, updated=STARTED + 5)
    seen = upload.as_of(STARTED + 5 + STALL_TIMEOUT, STALL_TIMEOUT)
    assert seen.state == "error"
    assert seen.failed
    assert seen.finished == STARTED + 5 + STALL_TIMEOUT
    assert seen.received == 10


def test_finished_upload_never_stalls():
    upload = finished(status=200)
    seen = upload.as_of(STARTED + 10 * STALL_TIMEOUT, STALL_TIMEOUT)
    assert seen.state == "done"
    assert seen.finished == upload.finished


def test_as_of_leaves_the_stored_record_unchanged():
    upload = record(received=10)
    seen = upload.as_of(STARTED + 2 * STALL_TIMEOUT, STALL_TIMEOUT)
    seen.received = 999
    assert upload.finished is None
    assert not upload.failed
    assert upload.received == 10


def test_as_of_returns_a_copy_even_when_nothing_changed():
    upload = record(received=10)
    assert upload.as_of(STARTED + 1, STALL_TIMEOUT) is not upload


# -- cancelled, files, stage --------------------------------------------------

def test_a_cancelled_upload_is_an_error_whatever_its_status():
    assert finished(status=200, cancelled=True).state == "error"


def test_files_and_stage_are_rendered_as_recorded():
    files = [{"field": "f", "filename": "a.txt", "received": 3, "done": True}]
    stage = {"name": "scan", "done": 1, "total": 2}
    rendered = render_upload(record(files=files, stage=stage), STARTED + 1)
    assert (rendered["files"], rendered["stage"], rendered["cancelled"]) == (files, stage, False)


# -- the store rules (each store keeps them: tests/test_store_contract.py) ----

def owned(key: str, owner: str | None, **changes) -> UploadRecord:
    return record(key=key, owner=owner, owner_known=True, **changes)


def test_a_poll_answers_the_newest_of_the_pollers_own_records():
    records = [owned("old", "alice"), record(key="pending"), owned("new", "alice"),
               owned("bobs", "bob")]
    assert poll_answer(records, "alice").key == "new"


def test_without_an_own_record_a_poll_answers_the_newest_pending_or_ownerless():
    records = [record(key="pending"), owned("nobodys", None), owned("bobs", "bob")]
    assert poll_answer(records, "alice").key == "nobodys"
    assert poll_answer(records, None).key == "nobodys"


def test_a_poll_never_answers_another_owners_record():
    assert poll_answer([owned("bobs", "bob")], "alice") is None
    assert poll_answer([owned("bobs", "bob")], None) is None


@pytest.mark.parametrize("changes, expected", [
    ({}, True),
    ({"finished": STARTED + 1}, False),
    ({"body_end": STARTED + 1}, False),
    ({"updated": STARTED - STALL_TIMEOUT}, False),
], ids=["receiving", "finished", "read-whole", "stalled"])
def test_only_an_upload_still_receiving_its_body_can_be_cancelled(changes, expected):
    assert can_cancel(record(**changes), STARTED, STALL_TIMEOUT) is expected


@pytest.mark.parametrize("old, expected", [
    (owned("old", "alice", finished=STARTED), True),
    (owned("old", "alice"), False),
    (owned("old", "bob", finished=STARTED), False),
    (owned("old", "alice", finished=STARTED, id="other"), False),
    (owned("new", "alice", finished=STARTED), False),
], ids=["finished", "in-progress", "other-owner", "other-id", "itself"])
def test_a_reused_id_replaces_only_the_owners_finished_record(old, expected):
    assert replaces(owned("new", "alice"), old) is expected


def test_a_progress_write_sets_body_end_once_and_never_for_a_cancelled_upload():
    first = progressed(record(), 10, None, STARTED + 1, ended=True)
    again = progressed(first, 10, None, STARTED + 2, ended=True)
    assert (first.body_end, again.body_end, again.updated) == (STARTED + 1,) * 2 + (STARTED + 2,)
    cancelled = progressed(record(cancelled=True), 30, None, STARTED + 1, ended=True)
    assert (cancelled.received, cancelled.body_end, cancelled.cancelled) == (30, None, True)


def test_a_progress_write_leaves_a_finished_record_as_it_ended():
    ended = record(finished=STARTED + 1, received=100)
    assert progressed(ended, 16, None, STARTED + 2, ended=False) == ended
