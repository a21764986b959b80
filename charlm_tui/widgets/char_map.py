"""The character map: every character at its 2-D PCA point, the selected one highlighted."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from charlm_tui.widgets.inspect_render import map_label


class CharMapPlot(PlotextPlot, can_focus=True):
    """A plotext scatter with the characters themselves as the markers (focusable, so the
    pane's keys keep working while it is shown)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.chars: list[str] = []
        self.points: list[list[float]] = []
        self.explained: list[float] = []
        self.selected: str | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self._draw()

    def show(self, chars: list[str], points: list[list[float]], explained: list[float]) -> None:
        self.chars, self.points, self.explained = list(chars), list(points), list(explained)
        self._draw()

    def select(self, char: str | None) -> None:
        if char != self.selected:
            self.selected = char
            self._draw()

    def _draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if not self.points:
            plt.title("character map: press v to come here once a text is inspected")
            plt.xticks([])
            plt.yticks([])
            self.refresh()
            return
        shares = " + ".join(f"{v:.0%}" for v in self.explained)
        plt.title(f"embeddings, PCA ({shares} of the variance)")
        xs = [pt[0] for pt in self.points]
        ys = [pt[1] for pt in self.points]
        pad_x = (max(xs) - min(xs)) * 0.05 or 1.0
        pad_y = (max(ys) - min(ys)) * 0.05 or 1.0
        plt.xlim(min(xs) - pad_x, max(xs) + pad_x)
        plt.ylim(min(ys) - pad_y, max(ys) + pad_y)
        plt.xticks([])
        plt.yticks([])
        for char, (x, y) in zip(self.chars, self.points, strict=True):
            chosen = char == self.selected
            plt.text(
                map_label(char),
                x,
                y,
                color="red" if chosen else "cyan",
                style="bold" if chosen else None,
            )
        self.refresh()
