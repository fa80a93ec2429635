"""The run as the framework hooks see it (`frameworks.FrameworkSink`)."""

from __future__ import annotations

from typing import Any

from .run import Run


class Sink:
    """Hands what argparse, matplotlib, TensorBoard and model savers report to a live run."""

    def __init__(self, run: Run) -> None:
        self.run = run

    def connect_arguments(self, values: dict[str, Any], types: dict[str, str]) -> dict[str, Any]:
        edited = self.run._record_section("Args", values)
        self.run._edit(
            lambda meta: meta.setdefault("param_types", {}).update(
                {f"Args/{key}": kind for key, kind in types.items()}
            )
        )
        return {**values, **edited}

    def report_scalar(self, title: str, series: str, value: float, iteration: int) -> None:
        self.run.logger.report_scalar(title, series, value, iteration)

    def report_text(self, text: str) -> None:
        self.run.logger.report_text(text)

    def report_image(self, title: str, series: str, iteration: int, image: Any) -> None:
        self.run.logger.report_image(title, series, iteration, image=image)

    def report_histogram(self, title: str, series: str, iteration: int, values: Any) -> None:
        self.run.logger.report_histogram(title, series, iteration, values=values)

    def report_matplotlib_figure(
        self, title: str, series: str, iteration: int, figure: Any
    ) -> None:
        self.run.logger.report_matplotlib_figure(title, series, iteration, figure=figure)

    def log_model(self, path: str, name: str | None = None, framework: str | None = None) -> None:
        self.run.log_model(path, name=name, framework=framework)
