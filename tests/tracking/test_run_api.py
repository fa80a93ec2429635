"""`Run.init` in this process: parameters, reports, artifacts, models, edits, and reading
them back, through the folder and through the index (SQLite and PostgreSQL)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from etude.tracking import ArtifactError, ReportError, Run, RunStateError, runs_dataframe

from .conftest import QUIET

# Every test here runs on SQLite and on PostgreSQL (the index the runs are ingested into).
pytestmark = pytest.mark.usefixtures("store_env")


def start(ws: Path, **kwargs: object) -> Run:
    options = {"project": "vision/mnist", "name": "baseline", **QUIET, **kwargs}
    return Run.init(workspace=ws, **options)  # type: ignore[arg-type]


def test_connect_keeps_types_and_returns_values(ws: Path) -> None:
    run = start(ws)
    values = {"lr": 0.1, "epochs": 3, "nan": float("nan"), "inf": float("inf"),
              "flag": True, "name": "cnn", "layers": [64, 64], "opt": {"beta": 0.9}}
    returned = run.connect(values)
    assert returned is values
    run.close()
    params = Run.get(run.id, workspace=ws).params
    assert params["General/lr"] == 0.1 and isinstance(params["General/epochs"], int)
    assert math.isnan(params["General/nan"]) and params["General/inf"] == math.inf
    assert params["General/flag"] is True and params["General/layers"] == [64, 64]
    assert params["General/opt.beta"] == 0.9


def test_connect_namespace_and_sections(ws: Path) -> None:
    import argparse

    run = start(ws)
    namespace = argparse.Namespace(batch_size=64, path=Path("/data"))
    assert run.connect(namespace, name="Data") is namespace
    config = run.connect_configuration({"layers": [64, 64]}, name="model")
    assert config == {"layers": [64, 64]}
    run.close()
    again = Run.get(run.id, workspace=ws)
    assert again.params == {"Data/batch_size": 64, "Data/path": "/data"}
    assert again.configuration == {"model": {"layers": [64, 64]}}


def test_reports_are_read_back(ws: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = start(ws)
    log = run.logger
    for i in range(100):
        log.report_scalar("loss", "train", value=1.0 / (i + 1), iteration=i)
        log.report_scalar("loss", "val", value=2.0 / (i + 1), iteration=i)
    log.report_scalar("loss", "train", value=float("nan"), iteration=100)
    log.report_single_value("accuracy", 0.93)
    log.report_text("epoch 3 done")
    log.report_table("predictions", "val", iteration=0,
                     table=pd.DataFrame({"y": [1, 2], "p": [0.5, float("nan")]}))
    figure, axes = plt.subplots()
    axes.plot([1, 2, 3])
    log.report_matplotlib_figure("curves", "val", iteration=0, figure=figure)
    log.report_plotly("roc", "val", iteration=0, figure={"data": [{"x": [0, 1], "y": [0, 1]}]})
    log.report_image("samples", "val", iteration=0, image=np.zeros((8, 8, 3), dtype=np.uint8))
    log.report_histogram("weights", "layer1", iteration=0, values=np.arange(10.0))
    sample = ws.parent / "sample.wav"
    sample.write_bytes(b"RIFF....")
    log.report_media("audio", "val", iteration=0, local_path=str(sample))
    run.close()
    got = Run.get(run.id, workspace=ws)
    scalars = got.get_scalars()
    iterations, values = scalars["loss"]["train"]
    assert list(iterations[:3]) == [0, 1, 2] and len(values) == 101 and math.isnan(values[-1])
    assert got.metrics["loss"]["train"] == {"last": pytest.approx(float("nan"), nan_ok=True),
                                            "min": 0.01, "max": 1.0, "count": 101}
    assert got.metrics["accuracy"]["accuracy"]["last"] == 0.93
    kinds = [event["kind"] for event in got.events()]
    assert kinds == ["text", "table", "matplotlib", "plotly", "image", "histogram", "media"]
    for event in got.events():
        if "file" in event:
            assert (got.folder / event["file"]).stat().st_size > 0


def test_debug_samples_keep_the_last_n(ws: Path, tmp_path: Path) -> None:
    (tmp_path / "config" / "etude").mkdir(parents=True)
    (tmp_path / "config" / "etude" / "settings.yaml").write_text("tracking:\n  debug_samples: 3\n")
    run = start(ws)
    for i in range(10):
        run.logger.report_image("samples", "val", iteration=i, image=np.full((2, 2), i / 10))
    run.close()
    files = sorted(p.name for p in (run.folder / "files").iterdir())
    assert len(files) == 3
    last = Run.get(run.id, workspace=ws).events("image")[-3:]
    assert [event["iteration"] for event in last] == [7, 8, 9]


@pytest.mark.parametrize("call, error", [
    pytest.param(lambda log: log.report_scalar("a", "b", "abc", 0), ReportError, id="text"),
    pytest.param(lambda log: log.report_scalar("a", "b", None, 0), ReportError, id="none"),
    pytest.param(lambda log: log.report_scalar("a", "b", 1.0, 0.5), ReportError, id="iter"),
    pytest.param(lambda log: log.report_scalar("", "b", 1.0, 0), ReportError, id="title"),
    pytest.param(lambda log: log.report_table("t", "s", 0, table=42), ReportError,
                 id="table"),
    pytest.param(lambda log: log.report_plotly("t", "s", 0, figure=[1]), ReportError,
                 id="plotly"),
    pytest.param(lambda log: log.report_image("t", "s", 0, image=np.zeros(5)), ReportError,
                 id="image"),
    pytest.param(lambda log: log.report_media("t", "s", 0, local_path="/no/such"), ReportError,
                 id="media"),
])
def test_bad_reports_say_what_and_where(ws: Path, call: object, error: type) -> None:
    run = start(ws)
    with pytest.raises(error) as raised:
        call(run.logger)  # type: ignore[operator]
    assert "report_" in str(raised.value) or "media" in str(raised.value)


def test_closed_run_refuses_reports(ws: Path) -> None:
    run = start(ws)
    log = run.logger
    run.close()
    with pytest.raises(RunStateError, match="closed"):
        log.report_scalar("a", "b", 1.0, 0)
    assert Run.current() is None


def test_artifacts_are_stored_once_by_content(ws: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights.bin"
    weights.write_bytes(b"x" * 10_000)
    first = start(ws, name="a", reuse_last=False)
    first.upload_artifact("predictions", pd.DataFrame({"y": [1, 2]}))
    first.upload_artifact("weights", str(weights))
    first.log_model(weights, name="final")
    first.close()
    second = start(ws, name="b", reuse_last=False)
    second.upload_artifact("weights", str(weights))
    second.close()
    blobs = [p for p in (ws / "blobs").rglob("*") if p.is_file()]
    assert len(blobs) == 2  # the frame and the weights, once
    got = Run.get(first.id, workspace=ws)
    assert got.artifacts["predictions"].get().equals(pd.DataFrame({"y": [1, 2]}))
    assert got.artifacts["weights"].get_local_copy().read_bytes() == b"x" * 10_000
    assert list(got.models["output"]) == ["final"]
    with pytest.raises(ArtifactError):
        second.upload_artifact("a/../b", {"x": 1})


def test_published_run_is_read_only(ws: Path) -> None:
    run = start(ws)
    with pytest.raises(RunStateError, match="ended"):
        run.publish()
    run.close()
    got = Run.get(run.id, workspace=ws)
    got.set_user_properties(dataset="mnist")  # allowed after the run
    got.publish()
    assert Run.get(run.id, workspace=ws).state == "published"
    for edit in (lambda r: r.set_user_properties(x=1), lambda r: r.add_tags("x"),
                 lambda r: r.connect({"a": 1}), lambda r: r.upload_artifact("a", {"b": 1})):
        with pytest.raises(RunStateError, match="published"):
            edit(Run.get(run.id, workspace=ws))


@pytest.mark.parametrize("kwargs", [
    pytest.param({"type": "train"}, id="type"), pytest.param({"project": ""}, id="project"),
    pytest.param({"project": "a//b"}, id="nested"), pytest.param({"name": " "}, id="name"),
    pytest.param({"tags": ["-x"]}, id="tag"),
])
def test_bad_init_arguments(ws: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        start(ws, **kwargs)


def test_current_and_second_init(ws: Path) -> None:
    run = start(ws)
    assert Run.current() is run
    with pytest.raises(RunStateError, match="still open"):
        start(ws, name="other")
    run.close()
    assert Run.current() is None


# -- through the index, on both databases ---------------------------------------------------
def make_runs(ws: Path) -> dict[str, Run]:
    made = {}
    for name, lr, loss, tags, project in [
        ("base", 0.1, 0.4, ["cnn"], "vision/mnist"), ("low", 0.01, 0.3, ["cnn", "debug"],
                                                      "vision/mnist"),
        ("other", 0.02, 0.6, ["mlp"], "vision/cifar"), ("text", 0.001, 0.1, [], "nlp"),
    ]:
        run = start(ws, project=project, name=name, tags=tags, reuse_last=False)
        run.connect({"lr": lr, "batch": 32})
        run.logger.report_scalar("loss", "train", loss, 0)
        run.logger.report_single_value("accuracy", 1 - loss)
        run.set_user_properties(dataset="mnist" if "mnist" in project else "other")
        run.close()
        made[name] = run
    return made


def names(runs: list[Run]) -> list[str]:
    return sorted(run.name for run in runs)


def test_query_filters(ws: Path, store_env: dict[str, str]) -> None:
    make_runs(ws)
    query = lambda **kw: names(Run.query(workspace=ws, **kw))  # noqa: E731
    assert query(project="vision") == ["base", "low", "other"]
    assert query(project="vision/mnist") == ["base", "low"]
    assert query(tags=["cnn", "-debug"]) == ["base"]
    assert query(state=["completed"], type=["training"]) == ["base", "low", "other", "text"]
    assert query(search="^(bas|lo)") == ["base", "low"]  # not hex: ids are searched too
    assert query(where="params.lr < 0.05 and metrics.loss.train < 0.5") == ["low", "text"]
    assert query(where='params."General/lr" = 0.1') == ["base"]
    assert query(where="metrics.accuracy > 0.65") == ["low", "text"]
    assert query(where="metrics.loss.train.max >= 0.6") == ["other"]
    assert query(where="user.dataset = mnist and tags has cnn") == ["base", "low"]
    ordered = Run.query(workspace=ws, order_by="-metrics.accuracy", limit=2)
    assert [run.name for run in ordered] == ["text", "low"]


def test_archived_runs_are_left_out(ws: Path, store_env: dict[str, str]) -> None:
    runs = make_runs(ws)
    Run.get(runs["base"].id, workspace=ws).archive()
    assert "base" not in names(Run.query(workspace=ws))
    assert "base" in names(Run.query(workspace=ws, include_archived=True))


def test_get_by_project_and_name_is_the_last_modified(ws: Path,
                                                       store_env: dict[str, str]) -> None:
    first = start(ws, name="same", reuse_last=False)
    first.close()
    second = start(ws, name="same", reuse_last=False)
    second.close()
    assert Run.get(project="vision/mnist", name="same", workspace=ws).id == second.id
    assert Run.get(second.id[:10], workspace=ws).id == second.id


def test_edits_after_the_run_reach_the_index(ws: Path, store_env: dict[str, str]) -> None:
    runs = make_runs(ws)
    Run.query(workspace=ws)  # the index knows every run now
    Run.get(runs["other"].id, workspace=ws).set_user_properties(dataset="mnist")
    assert "other" in names(Run.query(workspace=ws, where="user.dataset = mnist"))


def test_runs_dataframe(ws: Path, store_env: dict[str, str]) -> None:
    make_runs(ws)
    frame = runs_dataframe(workspace=ws, project="vision", order_by="name")
    assert list(frame["name"]) == ["base", "low", "other"]
    assert list(frame["General/lr"]) == [0.1, 0.01, 0.02]
    assert list(frame["metrics/loss/train"]) == [0.4, 0.3, 0.6]


def test_bad_where_says_where(ws: Path, store_env: dict[str, str]) -> None:
    from etude.store import FilterError

    make_runs(ws)
    with pytest.raises(FilterError, match="column"):
        Run.query(workspace=ws, where="metrics.loss.train.avg < 1")
    with pytest.raises(FilterError, match="unknown field"):
        Run.query(workspace=ws, where="param.lr < 1")


def test_backtick_parts(ws: Path, store_env: dict[str, str]) -> None:
    run = start(ws)
    run.logger.report_scalar("val/loss.x", "a b", 0.5, 0)
    run.close()
    assert names(Run.query(workspace=ws, where="metrics.`val/loss.x`.`a b` < 1")) == ["baseline"]


@pytest.mark.parametrize("spec", ["-metrics.score", "metrics.score", "-metrics.loss.train.max"])
def test_metric_pages_agree_with_the_full_order(ws: Path, store_env: dict[str, str],
                                                spec: str) -> None:
    """Pages sorted by one metric (read in the index's order) match the full sorted list:
    ties in index order, runs without the value (or NaN) last."""
    values = [0.5, 0.2, None, 0.5, float("nan"), 0.9, None, 0.2, 0.7]
    for number, value in enumerate(values):
        run = start(ws, name=f"r{number}", reuse_last=False)
        if value is not None:
            run.logger.report_single_value("score", value)
            run.logger.report_scalar("loss", "train", value, 0)
        run.close()
    everything = [run.name for run in Run.query(workspace=ws, order_by=spec)]
    assert set(everything[-3:]) == {"r2", "r4", "r6"}  # no value (or NaN): last
    for limit, offset in [(3, 0), (4, 3), (5, 5), (20, 0), (2, 8)]:
        page = Run.query(workspace=ws, order_by=spec, limit=limit, offset=offset)
        assert [run.name for run in page] == everything[offset:offset + limit], (limit, offset)
