"""Commands that use a run on new photos: predict, serve, export.

predict and serve resolve their --run with `select_predict_run`: the run `submit` would use for the
same argument (`best` and `latest` on the current prepared data), refused in one line when it has no
saved model to predict with. export resolves it with `select_export_run`: there `best` is the best
run that can be exported (and it says so when that is not the best run)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ferkaggle.cli.app import QUIET_OPTION, VERBOSE_OPTION, app, choices, quiet_tensorflow, set_output
from ferkaggle.core.console import console, err_console, result
from ferkaggle.core.constants import EMOTIONS
from ferkaggle.core.errors import FerkaggleError
from ferkaggle.photos.export import FORMATS as EXPORT_FORMATS
from ferkaggle.photos.export import export_problem, export_run, select_export_run
from ferkaggle.photos.faces import DETECTORS, expand_paths, make_detector
from ferkaggle.photos.outputs import write_outputs
from ferkaggle.photos.predict import predict_photos
from ferkaggle.photos.predictor import Predictor, select_predict_run
from ferkaggle.photos.serve import App, Limits, exposure_warning, make_server

Detector = choices("Detector", DETECTORS)
PredictFormat = choices("PredictFormat", ("table", "json"))  # how predict prints: the CLI's own choice
ExportFormat = choices("ExportFormat", EXPORT_FORMATS)
RUN_HELP = ("Run id (or a unique part), `best` (top of the leaderboard) or `latest` (newest); both only among "
            "runs on the current prepared data, the run `ferkaggle submit` would use. It needs a saved model.")


@app.command()
def predict(
    paths: list[Path] = typer.Argument(..., help="Photos (jpg, png, webp, bmp; any size, colour or grey) and folders of them."),
    run: str = typer.Option("best", "--run", "-r", help=RUN_HELP),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write predictions.csv and annotated copies of the photos to this folder."),
    fmt: PredictFormat = typer.Option(PredictFormat("table"), "--format", "-f", help="table (on screen) or json (to stdout)."),
    detector: Detector = typer.Option(Detector("haar"), "--detector", help="haar (OpenCV cascade) or mtcnn (needs `pip install 'ferkaggle\\[mtcnn]'`)."),
    margin: float = typer.Option(0.15, "--margin", help="Extra border around each detected face, as a share of its size on each side."),
    min_neighbors: int = typer.Option(5, "--min-neighbors", help="haar: overlapping detections a face needs; raise it (8) if it finds faces in patterns, lower it (3) if it misses faces."),
    quiet: bool = QUIET_OPTION,
    verbose: bool = VERBOSE_OPTION,
) -> None:
    """Find the faces in photos and predict each one's emotion with a trained run.

    Each face is cut square with a margin, made 48x48 grey like the training faces and given
    to the run's model (with its test-time augmentation; an ensemble uses its members' models).
    A photo with no face is listed with no rows. A file that is not a readable image gets one
    line and the rest go on; the exit code is then 1.

    Example: ferkaggle predict photos/ --run best --out predictions/
    """
    set_output(quiet, verbose)
    fmt, detector = fmt.value, detector.value
    if not 0.0 <= margin <= 1.0:
        raise FerkaggleError(f"--margin must be between 0 and 1, not {margin}")
    files = _photo_files(paths)
    quiet_tensorflow()
    chosen = select_predict_run(run)
    predictor = Predictor.from_run(chosen)
    results = predict_photos(files, predictor, make_detector(detector, min_neighbors), margin=margin,
                             keep_images=out is not None)
    errors = [r for r in results if r.error]
    if fmt == "json":
        payload = {"run": chosen.run_id, "detector": detector, "photos": [r.to_json() for r in results]}
        typer.echo(json.dumps(payload, indent=2))
    else:
        _print_table(results, chosen.run_id)
    for r in errors:
        err_console.print(f"[bold red]error:[/bold red] {escape(r.error)}")
    if out is not None:
        written = write_outputs(results, out)
        (err_console if fmt == "json" else console).print(
            f"wrote {escape(str(written[0]))} and {len(written) - 1} annotated photo(s) to {escape(str(out))}/")
    if errors:
        raise typer.Exit(1)


def _photo_files(paths: list[Path]) -> list[Path]:
    """The photos named and those in the folders named; a note for each folder without any, an error if none at all."""
    files = expand_paths(paths)
    empty = [p for p in paths if p.is_dir() and not any(f.is_relative_to(p) for f in files)]
    for folder in empty:
        err_console.print(f"[yellow]note:[/yellow] {escape(str(folder))}: no images (jpg, png, webp, bmp) in this folder")
    if not files:
        raise FerkaggleError("no photos to predict")
    return files


def _short_names(files: list[str]) -> dict[str, str]:
    """Paths relative to the folder all of them share, so that long paths do not fold the table."""
    try:
        common = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    except ValueError:
        return {f: f for f in files}
    return {f: os.path.relpath(os.path.abspath(f), common) for f in files}


def _print_table(results, run_id: str) -> None:
    names = _short_names([r.file for r in results])
    table = Table(title=f"emotions by run {run_id}")
    for column in ("file", "face", "box x,y,w,h", "emotion", *EMOTIONS):
        table.add_column(column, justify="right" if column in EMOTIONS or column == "face" else "left")
    for r in results:
        if r.error:
            continue
        if not r.faces:
            table.add_row(escape(names[r.file]), "-", "", "[dim]no face found[/dim]", *[""] * len(EMOTIONS))
        for index, face in enumerate(r.faces):
            probabilities = [f"[bold]{p:.2f}[/bold]" if k == int(face.probabilities.argmax()) else f"{p:.2f}"
                             for k, p in enumerate(face.probabilities)]
            table.add_row(escape(names[r.file]), str(index), ",".join(map(str, face.box)), face.emotion, *probabilities)
    result(table)
    faces = sum(len(r.faces) for r in results)
    no_face = [names[r.file] for r in results if not r.error and not r.faces]
    line = f"{faces} face(s) in {sum(1 for r in results if not r.error)} photo(s)"
    if no_face:
        line += f"; no face found in {len(no_face)}: " + ", ".join(escape(f) for f in no_face[:5]) + (", ..." if len(no_face) > 5 else "")
    result(line)


@app.command()
def serve(
    run: str = typer.Option("best", "--run", "-r", help=RUN_HELP),
    port: int = typer.Option(8000, "--port", "-p", help="TCP port to listen on (0 = any free port)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; the default is this machine only. The page has no authentication."),
    detector: Detector = typer.Option(Detector("haar"), "--detector", help="Face detector (see `ferkaggle predict --help`)."),
    workers: int = typer.Option(1, "--workers", help="Photos predicted at once (1-8; one model: 2 overlaps one photo's face search with another's model call)."),
    queue: int = typer.Option(8, "--queue", help="Photos that may wait for a worker; one more is answered 503 with Retry-After."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds a photo may wait and be predicted before its request gets 504."),
    upload_timeout: float = typer.Option(30.0, "--upload-timeout", help="Seconds for an upload to arrive before its request gets 408."),
) -> None:
    """A local web page: drop a photo (or take a webcam snapshot) and see each face's emotion.

    The page shows the photo with a box and label on every face and a bar chart of each
    face's seven probabilities. The JSON API is POST /predict with the image in the
    multipart field `file`; /docs and /openapi.json describe it. Stop with Ctrl-C.

    Example: ferkaggle serve --run best --port 8000, then open http://127.0.0.1:8000/
    """
    limits = Limits(workers=workers, queue=queue, timeout=timeout, upload_seconds=upload_timeout)
    limits.check()
    quiet_tensorflow()
    chosen = select_predict_run(run)
    app_ = App(Predictor.from_run(chosen), make_detector(detector.value), limits=limits)
    server = make_server(app_, host, port)
    bound_host, bound_port = server.server_address[:2]
    warning = exposure_warning(host)
    if warning:
        err_console.print(f"[bold yellow]warning:[/bold yellow] {escape(warning)}")
    console.print(f"serving run {chosen.run_id} on [bold]http://{bound_host}:{bound_port}/[/bold] (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    console.print("stopped")


@app.command()
def export(
    run: str = typer.Option("best", "--run", "-r", help="Run id (or a unique part), `best` (default: the best run on the current prepared data that can be exported, a CNN run or a CNN-only ensemble) or `latest`."),
    fmt: ExportFormat = typer.Option(ExportFormat("keras"), "--format", "-f", help="keras (.keras file) or tflite (TensorFlow Lite)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file or folder (default: ./<run_id>.<format>)."),
) -> None:
    """Write a run's model as one standalone file: 48x48x1 grey pixels in 0..255 in, 7 probabilities out.

    The run's test-time augmentation (and an ensemble's weighting) is built into the file,
    so it returns the run's own probabilities. Classes are in the order
    angry, disgust, fear, happy, sad, surprise, neutral.

    Example: ferkaggle export --format tflite --out fer.tflite
    """
    quiet_tensorflow()
    chosen, best = select_export_run(run)
    if best is not None:
        console.print(f"`best` for export: run {chosen.run_id}, the best run that can be exported "
                      f"(the best run, {best.run_id}, {escape(str(export_problem(best)))})")
    path = export_run(chosen, fmt.value, out)
    console.print(f"[green]wrote[/green] {escape(str(path))} ({path.stat().st_size / 1e6:.2f} MB) from run {chosen.run_id}: "
                  + escape("input float32 [batch, 48, 48, 1] pixels 0..255, output [batch, 7] probabilities"))
