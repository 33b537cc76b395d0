"""A leaderboard for every multirun: one row per job, best first, as markdown and CSV.

A Hydra callback: after each job it records the job's status, score and overrides in the job's
folder, then rewrites `leaderboard.md` and `leaderboard.csv` in the multirun folder from all the
records there. Rewriting after every job means a crash later in the sweep loses nothing, and a
failed job shows up as a row with its error.

With the submitit launchers `on_job_end` runs inside the job (on SLURM, in every task of it), so
only global rank 0 records, files are replaced whole, and the submitting process rebuilds the
leaderboard once more at the end from every record: jobs that finish together on a cluster
cannot drop each other's rows.
"""

import csv
import io
import json
import math
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig

from semseg.utils.atomic import replaced_atomically
from semseg.utils.run_info import in_multirun

RECORD = "job_result.json"
COLUMNS = ["rank", "job", "status", "score", "test/mIoU", "overrides", "run_dir", "error"]


class Leaderboard(Callback):
    @rank_zero_only
    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if not in_multirun():
            return
        run_dir = Path(config.hydra.runtime.output_dir)
        failed = job_return.status != JobStatus.COMPLETED
        value = job_return._return_value
        metrics_file = run_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        record = {
            "job": config.hydra.job.num,
            "status": "failed" if failed else "completed",
            "metric": config.get("optimized_metric") or "test/mIoU",
            "score": None if failed or value is None else float(value),
            "test/mIoU": metrics.get("test/mIoU"),
            "overrides": " ".join(job_return.overrides or []),
            "run_dir": str(run_dir),
            "error": f"{type(value).__name__}: {value}" if failed else "",
        }
        _replace(run_dir / RECORD, json.dumps(record, indent=2))
        write_leaderboard(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        write_leaderboard(Path(config.hydra.sweep.dir))


def _replace(path: Path, text: str) -> None:
    """Write a file whole: a reader (or a job finishing at the same time) never sees half of it."""
    with replaced_atomically(path) as file:
        file.write(text.encode("utf-8"))


def _sort_key(record: dict):
    score = record["score"]
    usable = score is not None and not math.isnan(score)
    return (not usable, -score if usable else 0.0, record["job"])


def write_leaderboard(sweep_dir: Path) -> list[dict]:
    """Rebuild the leaderboard files from the job records under `sweep_dir`."""
    records = [json.loads(p.read_text()) for p in sweep_dir.glob(f"*/{RECORD}")]
    records.sort(key=_sort_key)
    rows = [{"rank": rank, **record} for rank, record in enumerate(records, start=1)]
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    _replace(sweep_dir / "leaderboard.csv", table.getvalue())
    metric = records[0]["metric"] if records else "score"

    def cell(value) -> str:
        text = f"{value:.4f}" if isinstance(value, float) else ("" if value is None else str(value))
        return text.replace("|", "\\|")

    lines = [
        f"| rank | job | status | {metric} | test/mIoU | overrides | run dir | error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(cell(row[c]) for c in COLUMNS) + " |")
    _replace(sweep_dir / "leaderboard.md", "\n".join(lines) + "\n")
    return rows
