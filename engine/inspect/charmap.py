"""The character map: input embeddings in 2-D, and each character's nearest neighbours.

The embedding table (vocabulary x width) is centred and projected on its first
two principal components (SVD), which show the directions along which the
characters differ most; `explained` is the share of variance each keeps.
Neighbours are by cosine similarity of the full (uncentred) embeddings, the
character itself excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data.corpus import Vocab
from engine.inspect.saliency import embedding_module
from engine.inspect.text import require_char_model
from engine.models import CharLM


@dataclass
class CharMap:
    chars: list[str]
    points: np.ndarray  # (vocab, 2)
    explained: list[float]
    neighbours: list[list[tuple[str, float]]]

    def as_dict(self) -> dict:
        return {
            "chars": self.chars,
            "points": self.points.tolist(),
            "explained_variance": self.explained,
            "neighbours": {
                c: [[n, s] for n, s in near]
                for c, near in zip(self.chars, self.neighbours, strict=True)
            },
        }

    def neighbours_of(self, char: str) -> list[tuple[str, float]]:
        return self.neighbours[self.chars.index(char)]


def pca_2d(matrix: np.ndarray) -> tuple[np.ndarray, list[float]]:
    """(rows, 2) projection on the first two principal components, and their variance shares."""
    centred = matrix - matrix.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    components = vt[:2]
    points = centred @ components.T
    if points.shape[1] < 2:  # a one-dimensional embedding: pad the second axis
        points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
    variance = singular**2
    total = float(variance.sum())
    explained = [float(v / total) if total > 0 else 0.0 for v in variance[:2]]
    return points, explained + [0.0] * (2 - len(explained))


def cosine_neighbours(matrix: np.ndarray, k: int) -> list[list[tuple[int, float]]]:
    """For each row, the k other rows with the highest cosine similarity, best first."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit = matrix / np.where(norms > 0, norms, 1.0)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, matrix.shape[0] - 1)
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    return [[(int(j), float(similarity[i, j])) for j in row] for i, row in enumerate(order)]


def character_map(model: CharLM, vocab: Vocab, k: int = 5) -> CharMap:
    require_char_model(vocab)
    weights = embedding_module(model).weight.detach().float().cpu().numpy().astype(np.float64)
    points, explained = pca_2d(weights)
    near = cosine_neighbours(weights, k)
    chars = list(vocab.chars)
    return CharMap(
        chars=chars,
        points=points,
        explained=explained,
        neighbours=[[(chars[j], s) for j, s in row] for row in near],
    )
