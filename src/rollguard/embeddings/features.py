"""A small, fixed feature map of response embeddings: what the drift tests compare between arms.

A 384-d embedding is too many dimensions for a sequential test (every dimension costs samples, see
:mod:`rollguard.stats.mahalanobis_cs`), and no single low-dimensional view sees every kind of drift
(design notes: a centroid shift catches style, a codebook catches new topics, principal components
alone miss new topics). So the map concatenates three complementary views, each fitted once on a
sample of *accepted* answers (the rollout's first control answers, or its approved reference set):

- **principal components** (``pca_components``): where the answer sits among the usual variation;
  a change of register or style moves these means.
- **codebook memberships** (``codebook_size - 1`` one-hot columns of a k-means codebook): which kind
  of answer it is; a new or growing topic moves the share of one cluster (and the evidence names it).
- **novelty** (2 columns): distance to the nearest codebook centroid and the norm of the part the
  principal components do not explain; answers unlike anything accepted raise both, whatever their
  direction, which a projection alone would miss.

Every column is standardised on the fit sample, so the Mahalanobis distance between arm means reads
in standard deviations. The fit is deterministic (k-means++ seeded from the rollout id) and the map
is frozen afterwards: data used to fit it are not tested, which keeps the tests honest.

References
----------
- Arthur, D., Vassilvitskii, S. (2007). k-means++: the advantages of careful seeding. *SODA*, 1027-1035.
- Jolliffe, I. T. (2002). *Principal Component Analysis*, 2nd ed. Springer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass
class FeatureMap:
    """Frozen projection ``embedding -> standardised features`` (see the module docstring)."""

    mean: FloatArray  # (d,)
    components: FloatArray  # (p, d), orthonormal rows
    centroids: FloatArray  # (K, d)
    shift: FloatArray  # (k,) feature means on the fit sample
    scale: FloatArray  # (k,) feature standard deviations on the fit sample

    @property
    def input_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_clusters(self) -> int:
        return int(self.centroids.shape[0])

    @property
    def dim(self) -> int:
        return int(self.shift.shape[0])

    @classmethod
    def fit(cls, x: npt.ArrayLike, pca_components: int, codebook_size: int, seed: int) -> FeatureMap:
        """Fit on accepted answers ``x`` (n, d); components and clusters shrink to what n supports."""
        xa = np.asarray(x, dtype=np.float64)
        n, d = xa.shape
        if n < 4:
            raise ValueError("need at least 4 embeddings to fit a feature map")
        mean = xa.mean(axis=0)
        xc = xa - mean
        p = max(1, min(pca_components, n - 2, d))
        _, _, vt = np.linalg.svd(xc, full_matrices=False)
        comps = vt[:p]
        # deterministic signs: the largest coordinate of each component is positive
        signs = np.sign(comps[np.arange(p), np.abs(comps).argmax(axis=1)])
        comps = comps * np.where(signs == 0, 1.0, signs)[:, None]
        k = max(2, min(codebook_size, n // 2))
        centroids = _kmeans(xa, k, np.random.default_rng(seed))
        fm = cls(mean, comps, centroids, np.zeros(p + k - 1 + 2), np.ones(p + k - 1 + 2))
        raw, _ = fm._raw(xa)
        fm.shift = raw.mean(axis=0)
        sd = raw.std(axis=0)
        # one-hot columns: Laplace-smoothed Bernoulli sd, so a cluster the fit sample barely used does
        # not get a near-zero scale (and a huge weight) in the tests
        share = (raw[:, p : p + k - 1].sum(axis=0) + 1.0) / (n + 2.0)
        sd[p : p + k - 1] = np.sqrt(share * (1.0 - share))
        fm.scale = np.where(sd > 1e-9, sd, 1.0)
        return fm

    def _raw(self, x: FloatArray) -> tuple[FloatArray, IntArray]:
        xc = x - self.mean
        scores = xc @ self.components.T
        resid = np.sqrt(np.maximum((xc * xc).sum(axis=1) - (scores * scores).sum(axis=1), 0.0))
        d2 = _sq_dists(x, self.centroids)
        assign = d2.argmin(axis=1)
        k = self.n_clusters
        onehot = np.zeros((x.shape[0], k - 1))
        rows = np.flatnonzero(assign < k - 1)
        onehot[rows, assign[rows]] = 1.0
        dmin = np.sqrt(np.maximum(d2[np.arange(x.shape[0]), assign], 0.0))
        return np.hstack([scores, onehot, dmin[:, None], resid[:, None]]), assign

    def transform(self, x: npt.ArrayLike) -> tuple[FloatArray, IntArray]:
        """Standardised features (m, k) and the codebook cluster of each row."""
        xa = np.asarray(x, dtype=np.float64)
        if xa.ndim != 2 or xa.shape[1] != self.input_dim:
            raise ValueError(f"expected embeddings of dimension {self.input_dim}, got shape {xa.shape}")
        raw, assign = self._raw(xa)
        return (raw - self.shift) / self.scale, assign

    def to_state(self) -> dict[str, Any]:
        return {
            "v": 1,
            "mean": self.mean.tolist(),
            "components": self.components.tolist(),
            "centroids": self.centroids.tolist(),
            "shift": self.shift.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeatureMap:
        if state.get("v") != 1:
            raise ValueError(f"unsupported feature map state version {state.get('v')!r}")
        return cls(*(np.asarray(state[k], dtype=np.float64) for k in ("mean", "components", "centroids",
                                                                       "shift", "scale")))  # fmt: skip


def _sq_dists(x: FloatArray, c: FloatArray) -> FloatArray:
    out: FloatArray = (x * x).sum(axis=1)[:, None] - 2.0 * (x @ c.T) + (c * c).sum(axis=1)[None, :]
    return np.maximum(out, 0.0)


def _kmeans(x: FloatArray, k: int, rng: np.random.Generator, iterations: int = 30) -> FloatArray:
    """Lloyd's algorithm from a k-means++ seeding; empty clusters restart at the worst-served point."""
    n = x.shape[0]
    centers = np.empty((k, x.shape[1]))
    centers[0] = x[rng.integers(n)]
    d2 = _sq_dists(x, centers[:1])[:, 0]
    for j in range(1, k):
        total = d2.sum()
        idx = int(rng.choice(n, p=d2 / total)) if total > 0 else int(rng.integers(n))
        centers[j] = x[idx]
        d2 = np.minimum(d2, _sq_dists(x, centers[j : j + 1])[:, 0])
    assign = np.full(n, -1)
    for _ in range(iterations):
        dist = _sq_dists(x, centers)
        new = dist.argmin(axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = assign == j
            if members.any():
                centers[j] = x[members].mean(axis=0)
            else:
                worst = int(dist[np.arange(n), assign].argmax())
                centers[j] = x[worst]
    return centers
