"""`make test` runs two pytest-xdist workers; conftest schedules the modules that share the session's
Ray head and MLflow server as one unit. A module that starts using them without joining the unit
would start a second head and server on the other worker: this test names it."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SHARED_SERVICES, _unit, uses


def test_every_user_of_the_shared_services_is_in_their_unit(request):
    users = {Path(item.nodeid.split("::", 1)[0]).name for item in request.session.items
             if uses(item, "ray_head") or uses(item, "mlflow_server")}
    missing = users - set(SHARED_SERVICES)
    assert not missing, f"add {sorted(missing)} to tests/conftest.py SHARED_SERVICES"
    assert _unit("tests/test_tune.py::test_x") == "shared-services" and _unit("tests/test_trace.py::t") == "tests/test_trace.py"
