"""Lightning's CSVLogger, able to append to a metrics.csv another process started."""

import csv
import os

from lightning.pytorch.loggers import CSVLogger as LightningCSVLogger


class CSVLogger(LightningCSVLogger):
    """Keeps the columns already in metrics.csv when new ones arrive.

    Lightning's writer knows only the columns it logged itself. Under `ddp_spawn`, fit and test
    run in separate processes; when test adds its columns, the writer rewrote the file with the
    test columns alone and failed on the rows validation had written. Reading the existing
    header first keeps every column.
    """

    @property
    def experiment(self):
        writer = super().experiment
        path = getattr(writer, "metrics_file_path", None)
        if isinstance(path, str) and not writer.metrics_keys and os.path.isfile(path):
            with open(path, newline="") as file:
                writer.metrics_keys.extend(next(csv.reader(file), []))
        return writer
