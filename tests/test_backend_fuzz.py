"""Schema-driven fuzzing of the whole REST API with schemathesis: generated requests from the
OpenAPI schema, against the app with a real capture of a tiny GGUF loaded. Every response must
be no 5xx, have a status and a body that the schema declares. Bounded examples: well under a minute.
Live runs are fuzzed too (with the run token): the runs that really start are bounded (the tiny
model, a few tokens), so their event streams end quickly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

TOKEN = "fuzz-token"
TINY_MODEL = "tiny-llama.gguf"


@pytest.fixture(scope="module")
def fuzz_schema(tiny_capture_path: Path, tiny_llama: Path, tmp_path_factory: pytest.TempPathFactory):
    from backend.server import create_app

    data = tmp_path_factory.mktemp("fuzz-data")
    shutil.copy(tiny_capture_path, data / "tiny.json")
    (data / "models").mkdir()
    shutil.copy(tiny_llama, data / "models" / TINY_MODEL)
    app = create_app(data, max_upload_bytes=1024 * 1024, allow_runs=True, run_token=TOKEN)
    app.state.store.load("tiny.json")
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    schema.app_for_test = app
    yield schema
    app.state.runs.shutdown()
    app.state.runs.join(60)


def _realistic(drawn: tuple) -> object:
    """Half of the cases keep what schemathesis generated; the other half use the loaded capture
    and small trial/step ids, so the fuzzing also reaches the successful paths."""
    case, keep, small = drawn
    case.headers = {**(case.headers or {}), "X-Spectra-Token": TOKEN}
    if keep:
        return case
    if isinstance(case.body, dict) and "prompts" in case.body:  # a run that really starts, kept small
        case.body.update(model=TINY_MODEL, prompts=["Hi"], max_tokens=1 + small, preset="observe")
    if isinstance(case.path_parameters, dict) and "run_id" in case.path_parameters:
        case.path_parameters["run_id"] = f"r{1 + small}"
    for params in (case.query, case.body, case.path_parameters):
        if isinstance(params, dict):
            if params is not case.path_parameters:
                params.pop("capture_id", None)
            for name, value in (("trial_id", small % 2), ("step", small), ("n", small), ("head", small)):
                if name in params:
                    params[name] = value
    return case


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 50  # per operation


def test_api_never_errors(fuzz_schema) -> None:
    """Every operation of the OpenAPI schema, fuzzed: no 5xx, responses as the schema declares."""
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert len(operations) >= 15, [op.label for op in operations]
    for operation in operations:

        @given(case=st.tuples(operation.as_strategy(), st.booleans(), st.integers(0, 3)).map(_realistic))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def fuzz(case) -> None:
            case.call_and_validate(checks=CHECKS)

        fuzz()
    runs = fuzz_schema.app_for_test.state.runs.runs()
    assert any(r.state == "done" and r.file for r in runs), [r.info() for r in runs]  # runs really ran
