"""Editing a draft's parameters and configuration objects from the UI's API, on SQLite and
PostgreSQL: texts take the type of the value they replace, refusals name the parameter, and
only a draft is edited (409 with the tracking layer's reason otherwise)."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from etude.tracking import Run
from etude.web.run_edits import edit_text, parse_text

from .conftest import QUIET, make_client, run_experiment

HEADERS = {"X-Etude": "1"}


def clone(client: Any, ref: str) -> str:
    reply = client.post(f"/api/runs/{ref}/action", json={"action": "clone"}, headers=HEADERS)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["clone"])


def set_params(client: Any, ref: str, values: dict[str, Any]) -> Any:
    return client.post(f"/api/runs/{ref}/parameters", json={"set": values}, headers=HEADERS)


def set_configuration(client: Any, ref: str, name: str, value: Any) -> Any:
    return client.post(f"/api/runs/{ref}/configuration", json={"name": name, "value": value},
                       headers=HEADERS)


# -- the text rule ----------------------------------------------------------------------------
@pytest.mark.parametrize(("current", "text", "expected"), [
    pytest.param(3, " 64 ", 64, id="int"),
    pytest.param(0.1, "1e-3", 0.001, id="float"),
    pytest.param(0.1, "3", 3.0, id="float-from-whole-number"),
    pytest.param(True, "False", False, id="bool"),
    pytest.param(False, "yes", True, id="bool-yes"),
    pytest.param([1, 2], "[3, 4]", [3, 4], id="list"),
    pytest.param({"a": 1}, '{"b": 2}', {"b": 2}, id="dict"),
    pytest.param("adam", " 42 ", " 42 ", id="text-kept-as-typed"),
    pytest.param(None, "5", 5, id="null-json"),
    pytest.param(None, "relu", "relu", id="null-text"),
])
def test_a_text_takes_the_type_of_the_value_it_replaces(current, text, expected):
    parsed = parse_text("General/x", text, current)
    assert parsed == expected and type(parsed) is type(expected)


@pytest.mark.parametrize(("current", "text", "expected"), [
    pytest.param(3, "3.5", "General/x: expected an int (its current value is 3), got '3.5'",
                 id="int"),
    pytest.param(0.1, "fast", "expected a float (its current value is 0.1)", id="float"),
    pytest.param(True, "maybe", "expected a bool (its current value is true)", id="bool"),
    pytest.param([1], "{}", "expected a list (its current value is [1])", id="list"),
    pytest.param({"a": 1}, "[1", "expected a dict", id="dict"),
])
def test_an_unparsable_text_names_the_parameter_and_the_type(current, text, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        parse_text("General/x", text, current)


@pytest.mark.parametrize("value", [0.1, 1e-7, 3.0, math.inf, 7, True, "a b", [1, "x"],
                                   {"k": [1]}, None])
def test_a_value_shown_for_editing_reads_back_as_itself(value):
    parsed = parse_text("General/x", edit_text(value), value)
    assert parsed == value and type(parsed) is type(value)


# -- parameters --------------------------------------------------------------------------------
def test_a_drafts_parameters_are_set_from_text_with_their_types(client, runs, ws):
    draft = clone(client, runs["run-0"])
    reply = set_params(client, draft, {"General/lr": "0.05", "epochs": "7"})
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["changed"] == ["General/epochs", "General/lr"]
    assert data["texts"]["General/lr"] == "0.05" and data["params"]["General/epochs"] == 7
    params = Run.get(draft, workspace=ws).params
    assert params["General/lr"] == 0.05 and params["General/epochs"] == 7
    assert isinstance(params["General/epochs"], int)
    found = client.get("/api/runs", params={"where": "params.lr = 0.05 and params.epochs = 7"})
    assert [row["id"] for row in found.json()["rows"]] == [draft]  # the index has the edit
    # A script sends typed JSON: taken as it is. An unchanged value is not an edit.
    typed = set_params(client, draft, {"General/lr": 0.02, "General/epochs": "7"}).json()
    assert typed["changed"] == ["General/lr"] and typed["params"]["General/lr"] == 0.02


def test_refused_values_are_listed_by_parameter_and_nothing_is_set(client, runs, ws):
    draft = clone(client, runs["run-1"])
    reply = set_params(client, draft, {"General/lr": "0.2", "General/epochs": "3.5",
                                       "/lr": "1"})
    assert reply.status_code == 400
    problems = reply.json()["problems"]
    assert sorted(problems) == ["/lr", "General/epochs"]
    assert "General/epochs: expected an int" in problems["General/epochs"]
    assert "empty section or key" in problems["/lr"]
    assert Run.get(draft, workspace=ws).params["General/lr"] == 0.01
    assert set_params(client, draft, {}).status_code == 400
    unknown = client.post(f"/api/runs/{draft}/parameters", json={"bogus": ["General/lr"]},
                          headers=HEADERS)
    assert unknown.status_code == 400 and "bogus" in unknown.json()["error"]


def edit(client: Any, ref: str, **body: Any) -> Any:
    return client.post(f"/api/runs/{ref}/parameters", json=body, headers=HEADERS)


def test_parameters_are_added_and_removed_in_one_edit(client, runs, ws):
    draft = clone(client, runs["run-2"])
    reply = edit(client, draft, set={"General/dropout": "0.3", "Model/act": "relu"},
                 remove=["General/epochs"])
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["changed"] == ["General/dropout", "Model/act"]
    assert data["removed"] == ["General/epochs"]
    params = Run.get(draft, workspace=ws).params
    assert params["General/dropout"] == 0.3 and params["Model/act"] == "relu"  # JSON, else text
    assert "General/epochs" not in params and "General/lr" in params
    meta = Run.get(draft, workspace=ws)._read_meta()
    assert "epochs" not in meta["edited"].get("General", {})
    found = client.get("/api/runs", params={"where": "params.dropout = 0.3"}).json()["rows"]
    assert [row["id"] for row in found] == [draft]  # the index has the edit
    gone = client.get("/api/runs", params={"where": f'params.epochs > 0 and id ~ "{draft}"'})
    assert gone.json()["rows"] == []
    # Removing the last parameter of a section drops the section.
    assert edit(client, draft, remove=["Model/act"]).status_code == 200
    assert "Model" not in Run.get(draft, workspace=ws)._read_meta()["params"]


def test_a_refused_removal_changes_nothing(client, runs, ws):
    draft = clone(client, runs["run-2"])
    before = Run.get(draft, workspace=ws).params
    reply = edit(client, draft, set={"General/lr": "0.5", "General/epochs": "4"},
                 remove=["General/nope", "General/epochs", "/x"])
    assert reply.status_code == 400
    problems = reply.json()["problems"]
    assert "no such parameter" in problems["General/nope"]
    assert "both set and removed" in problems["General/epochs"]
    assert "empty section or key" in problems["/x"]
    assert Run.get(draft, workspace=ws).params == before
    bare = edit(client, draft, set={"epochs": "4"}, remove=["General/epochs"])  # same parameter
    assert "both set and removed" in bare.json()["problems"]["General/epochs"]
    long_name = "General/" + "x" * 300
    assert "at most 200" in edit(client, draft, set={long_name: "1"}).json()["problems"][
        long_name]
    assert "control characters" in edit(client, draft, set={"General/a\nb": "1"}).json()[
        "problems"]["General/a\nb"]


def test_only_a_draft_is_edited(client, runs):
    completed = runs["run-0"]
    for reply in (set_params(client, completed, {"General/lr": "0.5"}),
                  set_configuration(client, completed, "net", '{"layers": []}')):
        assert reply.status_code == 409
        assert "is completed: it cannot be edited" in reply.json()["error"]
    draft = clone(client, completed)
    client.post(f"/api/runs/{draft}/action", json={"action": "enqueue"}, headers=HEADERS)
    refused = set_params(client, draft, {"General/lr": "bad"})  # the state is checked first
    assert refused.status_code == 409 and "is queued" in refused.json()["error"]
    assert client.post(f"/api/runs/{draft}/parameters", json={"set": {"General/lr": "1"}}
                       ).status_code == 403  # no X-Etude header


def test_a_job_clone_is_edited_by_its_config_parameters(ws, tmp_path, store_env):
    """Only the values changed become edits: the agent rebuilds the rest from the job."""
    run_experiment(ws, tmp_path, store_env)
    with make_client(ws) as client:
        rows = client.get("/api/runs", params={"where": "params.lr = 0.1"}).json()["rows"]
        draft = clone(client, rows[0]["id"])
        shown = client.get(f"/api/runs/{draft}").json()["params"]
        assert shown["Config/lr"] == 0.1
        texts = {path: edit_text(value) for path, value in shown.items()}
        reply = set_params(client, draft, {**texts, "Config/lr": "0.3"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["changed"] == ["Config/lr"]
    assert Run.get(draft, workspace=ws)._read_meta()["edited"] == {"Config": {"lr": 0.3}}


# -- configuration objects ---------------------------------------------------------------------
def test_a_configuration_object_is_replaced_from_its_json_text(client, runs, ws):
    draft = clone(client, runs["run-2"])
    reply = set_configuration(client, draft, "net", '{"layers": [4, 8]}')
    assert reply.status_code == 200, reply.text
    assert reply.json()["configuration"] == {"layers": [4, 8]}
    assert Run.get(draft, workspace=ws).configuration["net"] == {"layers": [4, 8]}
    bad = set_configuration(client, draft, "net", '{"layers": [4,')
    assert bad.status_code == 400 and "configuration 'net': not JSON" in bad.json()["error"]
    scalar = set_configuration(client, draft, "net", "5")
    assert scalar.status_code == 400 and "expected a JSON object or list" in scalar.json()["error"]
    typed = set_configuration(client, draft, "opt", {"name": "adam"})  # a new one, as JSON
    assert typed.status_code == 200
    assert Run.get(draft, workspace=ws).configuration == {"net": {"layers": [4, 8]},
                                                          "opt": {"name": "adam"}}
    assert set_configuration(client, draft, "", {}).status_code == 400


def test_a_text_configuration_stays_text_and_a_file_keeps_its_name(ws, tmp_path, store_env):
    """A text naming a file on the server is stored as that text, never read."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the UI")
    settings = tmp_path / "settings.yaml"
    settings.write_text("lr: 0.1\n")
    with Run.init(project="p", name="files", workspace=ws, **QUIET) as run:
        run.connect_configuration("some notes", name="notes")
        run.connect_configuration(settings, name="settings")
    with make_client(ws) as client:
        draft = clone(client, run.id)
        assert set_configuration(client, draft, "notes", str(secret)).status_code == 200
        reply = set_configuration(client, draft, "settings", "lr: 0.5\n")
        assert reply.status_code == 200 and reply.json()["text"] == "lr: 0.5\n"
        page = client.get(f"/runs/{draft}").text
    configuration = Run.get(draft, workspace=ws).configuration
    assert configuration["notes"] == str(secret)
    assert configuration["settings"] == {"file": "settings.yaml", "text": "lr: 0.5\n"}
    assert "(file settings.yaml)" in page and "lr: 0.5" in page


# -- the page ----------------------------------------------------------------------------------
def test_a_drafts_page_has_its_values_in_inputs_and_an_ended_runs_has_none(client, runs):
    draft = clone(client, runs["run-0"])
    html = client.get(f"/runs/{draft}").text
    assert re.search(r'<input [^>]*name="General/lr" value="0.1"', html)
    assert 'id="params-form"' in html and 'class="configuration-form' in html
    assert '<script src="/static/js/run_edit.js"' in html
    assert not re.search(r"<script\b[^>]*>[^<]", html) and not re.search(r"\son[a-z]+=", html)
    ended = client.get(f"/runs/{runs['run-0']}").text
    assert "params-form" not in ended and "run_edit.js" not in ended

