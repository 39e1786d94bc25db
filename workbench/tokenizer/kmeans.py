"""k-means in torch: k-means++ seeding, Lloyd iterations, empty clusters re-seeded from the worst-fit points.

Distances are computed in chunks, so clustering a few hundred thousand frames stays in a few hundred MB.
"""

from __future__ import annotations

import torch

CHUNK = 16384


def assign(x: torch.Tensor, centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D), (K, D) -> nearest centroid (N,) and its squared distance (N,)."""
    c2 = centroids.square().sum(1)
    units, dists = [], []
    for chunk in x.split(CHUNK):
        d = c2[None] - 2 * chunk @ centroids.T + chunk.square().sum(1, keepdim=True)  # (n, K)
        m = d.min(1)
        units.append(m.indices)
        dists.append(m.values.clamp_min(0))
    return torch.cat(units), torch.cat(dists)


def kmeans_pp(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeds (Arthur & Vassilvitskii 2007): each next seed drawn in proportion to squared distance."""
    first = torch.randint(len(x), (1,), generator=generator)
    centroids = [x[first]]
    closest = (x - x[first]).square().sum(1)
    for _ in range(1, k):
        pick = torch.multinomial(closest + 1e-12, 1, generator=generator)
        centroids.append(x[pick])
        closest = torch.minimum(closest, (x - x[pick]).square().sum(1))
    return torch.cat(centroids)


def kmeans(x: torch.Tensor, k: int, iters: int = 25, seed: int = 0, tol: float = 1e-4) -> tuple[torch.Tensor, dict]:
    """Cluster (N, D) frames into k centroids (K, D). Returns the centroids and a summary (inertia per iteration)."""
    if len(x) < k:
        raise ValueError(f"k-means needs at least k={k} frames, got {len(x)}: give it more audio")
    x = x.float()
    g = torch.Generator().manual_seed(seed)
    centroids = kmeans_pp(x, k, g)
    history = []
    for _ in range(iters):
        units, dists = assign(x, centroids)
        history.append(float(dists.mean()))
        counts = torch.bincount(units, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, units, x)
        new = sums / counts.clamp_min(1)[:, None]
        empty = (counts == 0).nonzero().flatten()
        if len(empty):  # re-seed from the points that fit worst
            new[empty] = x[dists.topk(len(empty)).indices]
        shift = (new - centroids).square().sum(1).max()
        centroids = new
        if len(history) > 1 and abs(history[-2] - history[-1]) <= tol * history[-2] and not len(empty):
            break
    units, dists = assign(x, centroids)
    used = int((torch.bincount(units, minlength=k) > 0).sum())
    return centroids, {"frames": len(x), "k": k, "iterations": len(history), "inertia": float(dists.mean()),
                       "inertia_history": [round(h, 4) for h in history], "used": used, "last_shift": float(shift)}
