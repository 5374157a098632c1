"""The local leaderboard: every recorded run, ranked by holdout-val accuracy.

Rows are ranked by `ferkaggle.runs.select.rank_key`, THE ranking of runs in the package: the
leaderboard, `best` (`select_run`) and `ensemble --top` (on each fitting half) all sort by it.

Input: the run registry (`ferkaggle.runs.registry.list_runs`) and, optionally, the split
fingerprint of the current prepared data. Output: `Section`s of `Row`s, one section per split
fingerprint, the current split first (then the most recently used), each ranked by holdout accuracy
(macro-F1 breaks ties). Runs made on different holdout splits are never ranked together:
their accuracies are on different rows. Renderers turn sections into markdown, CSV or JSON
text here; the rich table lives in the CLI.

Only these run fields are read, so runs of every kind (baseline, cnn, ensemble) appear:
run.json kind, model, summary, status, duration_s, started, data.split_fingerprint,
data.data_fingerprint, data.key; metrics.json val_accuracy, val_macro_f1, cv_mean, cv_std,
scored_on, selected_on_score (through `Run.scored_on` / `Run.selected_on_score`, which know the
runs recorded before these fields); and the size of model.keras / model.joblib.

Each row says what its score was computed on ("holdout", or "holdout, cross-fitted halves"
for ensembles) and marks with SELECTED_MARK a run whose own choices (early stopping,
checkpoint, ensemble members or weights) were made on those same rows: its score is optimistic.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

from ferkaggle.runs.registry import list_runs
from ferkaggle.runs.select import is_refit, rank_key

FORMATS: tuple[str, ...] = ("table", "markdown", "csv", "json")
SELECTED_MARK = "(selected on it)"
SELECTED_NOTE = ("runs recorded before selection moved off the holdout: they early-stopped or chose "
                 "ensemble members on the rows they are scored on, so their score is optimistic")


@dataclass
class Row:
    rank: int | None  # 1-based within its section; None for runs that did not complete
    run_id: str
    kind: str
    model: str
    summary: str
    status: str
    val_accuracy: float | None
    val_macro_f1: float | None
    cv_mean: float | None
    cv_std: float | None
    duration_s: float | None
    model_bytes: int
    scored_on: str  # what val_accuracy was computed on: "holdout" | "holdout, cross-fitted halves"
    selected_on_score: bool  # the run's own choices were made on those rows too (older runs)
    split: str  # split fingerprint (short)
    data: str  # data fingerprint (short)
    date: str  # start time, "YYYY-MM-DD HH:MM"
    refit: bool = False  # a `ferkaggle refit` of another run (ranks before it on equal figures)
    backend: str = ""  # the Keras backend a CNN run trained on (run.json runtime.backend); "" for others


@dataclass
class Section:
    split: str  # split fingerprint, short
    data_key: str  # the prepared folder name of its most recent run
    current: bool  # the split of the current (latest) prepared data
    rows: list[Row] = field(default_factory=list)
    hidden: int = 0  # rows cut by --top


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _row(run) -> Row:
    info, metrics = run.info, run.metrics
    data = info.get("data", {})
    started = str(info.get("started") or "")
    return Row(
        rank=None, run_id=run.run_id, kind=str(info.get("kind", "")), model=str(info.get("model", "")),
        summary=str(info.get("summary", "")), status=run.status,
        val_accuracy=_float(metrics.get("val_accuracy")), val_macro_f1=_float(metrics.get("val_macro_f1")),
        cv_mean=_float(metrics.get("cv_mean")), cv_std=_float(metrics.get("cv_std")),
        # A search trial is recorded after it trained, so its run.json duration is only the
        # recording; metrics' train_seconds is the real cost. Take whichever is larger.
        duration_s=max((v for v in (_float(info.get("duration_s")), _float(metrics.get("train_seconds"))) if v is not None),
                       default=None),
        model_bytes=run.size_bytes(), scored_on=run.scored_on, selected_on_score=run.selected_on_score,
        split=str(data.get("split_fingerprint", "?"))[:8], data=str(data.get("data_fingerprint", "?"))[:8],
        date=started[:16].replace("T", " "), refit=is_refit(run),
        backend=str((info.get("runtime") or {}).get("backend", "")),
    )


def _sort_key(row: Row):
    completed = row.status == "completed" and row.val_accuracy is not None
    return (not completed, *rank_key(row.val_accuracy, row.val_macro_f1, row.run_id, row.refit))


def build_sections(runs: Iterable, current_split: str | None = None, *, kind: str | None = None,
                   top: int | None = None) -> list[Section]:
    """Group runs by split fingerprint and rank each group; `runs` oldest first (as list_runs gives).

    `top` keeps the best N ranked rows of each section; incomplete runs (present only when
    the caller listed them) are shown after the ranked ones, unranked.
    """
    runs = [r for r in runs if kind is None or r.kind == kind]
    groups: dict[str, list] = {}
    latest: dict[str, int] = {}
    for position, run in enumerate(runs):  # oldest first, so the last position of a group is its most recent run
        split = str(run.info.get("data", {}).get("split_fingerprint", "?"))
        groups.setdefault(split, []).append(run)
        latest[split] = position
    current = current_split if current_split in groups else None
    # Current split first, then the group used most recently.
    order = sorted(groups, key=lambda s: (s != current, -latest[s]))
    sections = []
    for split in order:
        rows = sorted((_row(r) for r in groups[split]), key=_sort_key)
        ranked = [r for r in rows if r.status == "completed" and r.val_accuracy is not None]
        unranked = [r for r in rows if r not in ranked]
        for i, row in enumerate(ranked, 1):
            row.rank = i
        hidden = 0
        if top is not None and len(ranked) > top:
            hidden = len(ranked) - top
            ranked = ranked[:top]
        section = Section(split=split[:8], data_key=str(groups[split][-1].info.get("data", {}).get("key", "")),
                          current=split == current, rows=ranked + unranked, hidden=hidden)
        sections.append(section)
    return sections


def leaderboard(runs_root=None, *, kind: str | None = None, top: int | None = None,
                include_all: bool = False, current_split: str | None = None) -> list[Section]:
    """Sections from the registry under runs_root (completed runs unless include_all)."""
    return build_sections(list_runs(runs_root, include_incomplete=include_all), current_split, kind=kind, top=top)


# ---------------------------------------------------------------- text formats

def fmt_acc(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


def fmt_cv(row: Row) -> str:
    if row.cv_mean is None:
        return "—"
    return f"{row.cv_mean:.4f} ± {row.cv_std:.4f}" if row.cv_std is not None else f"{row.cv_mean:.4f}"


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def fmt_bytes(size: int) -> str:
    if not size:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""  # unreachable


def describe(row: Row) -> str:
    """Model + short config, the Keras backend where it is not the default (tensorflow), with the
    status for runs that did not complete."""
    text = row.summary or row.model
    if row.model and not text.startswith(row.model):
        text = f"{row.model}: {text}"
    if row.backend and row.backend != "tensorflow":
        text += f", on {row.backend}"
    return text if row.status == "completed" else f"{text} [{row.status}]"


def section_title(section: Section) -> str:
    where = "current prepared data" if section.current else "prepared data"
    return f"split {section.split} ({where}{' ' + section.data_key if section.data_key else ''})"


COLUMNS = ("#", "run", "kind", "model", "val acc", "val F1", "scored on", "CV acc ± std", "time", "size", "data",
           "date")
"""Column headers of the table and markdown formats ("val" = the holdout-val rows)."""


def fmt_scored_on(row: Row) -> str:
    return row.scored_on + (f" {SELECTED_MARK}" if row.selected_on_score else "")


def cells(row: Row) -> list[str]:
    return [str(row.rank) if row.rank else "—", row.run_id, row.kind, describe(row), fmt_acc(row.val_accuracy),
            fmt_acc(row.val_macro_f1), fmt_scored_on(row), fmt_cv(row), fmt_seconds(row.duration_s),
            fmt_bytes(row.model_bytes), row.data, row.date]


def to_markdown(sections: list[Section]) -> str:
    out = []
    for section in sections:
        out.append(f"### {section_title(section)}\n")
        out.append("| " + " | ".join(COLUMNS) + " |")
        out.append("|" + "|".join("---" for _ in COLUMNS) + "|")
        for row in section.rows:
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells(row)) + " |")
        if section.hidden:
            out.append(f"\n{section.hidden} more not shown (--top)")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _records(sections: list[Section]) -> list[dict[str, Any]]:
    records = []
    for section in sections:
        for row in section.rows:
            record = asdict(row)
            record["current_split"] = section.current
            records.append(record)
    return records


def to_json(sections: list[Section]) -> str:
    return json.dumps(_records(sections), indent=2) + "\n"


def to_csv(sections: list[Section]) -> str:
    buffer = io.StringIO()
    names = [f for f in Row.__dataclass_fields__] + ["current_split"]
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for record in _records(sections):
        writer.writerow({k: ("" if v is None else v) for k, v in record.items()})
    return buffer.getvalue()
