"""Charts with matplotlib, saved as PNG atomically: training curves, bars, scatter plots.

matplotlib runs on its file-only backend (Agg), so charts draw on machines without
a display. Each function returns the saved path.
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from common import runs  # noqa: E402


def save(figure, path, dpi=110):
    """Write `figure` to `path` (PNG) atomically and close it."""
    figure.tight_layout()
    with runs.atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=dpi)
    plt.close(figure)
    return path


def curves(series, path, title="", xlabel="epoch", ylabel="", logy=False):
    """Line chart: `series` maps a label to (x values, y values)."""
    figure, axes = plt.subplots(figsize=(8, 4.5))
    for label, (x, y) in series.items():
        axes.plot(x, y, label=label, marker="o" if len(x) <= 30 else None, markersize=3)
    axes.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logy:
        axes.set_yscale("log")
    axes.grid(alpha=0.3)
    if len(series) > 1:
        axes.legend()
    return save(figure, path)


def figure(width=8, height=4.5, rows=1, columns=1):
    """A new figure and its axes, for charts no function here draws."""
    return plt.subplots(rows, columns, figsize=(width, height), squeeze=False)
