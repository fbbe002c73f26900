"""Patch Selection Module: window scores, suppression and box mapping against naive loops."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.patches import select_patches
from detector.psm import (
    activation_map,
    central_squares,
    select_windows,
    window_scores,
    windows_to_boxes,
)


def naive_window_scores(a: torch.Tensor, k: int) -> torch.Tensor:
    h, w = a.shape
    out = torch.empty(h - k + 1, w - k + 1, dtype=torch.float64)
    for r in range(h - k + 1):
        for c in range(w - k + 1):
            out[r, c] = sum(float(a[r + i, c + j]) for i in range(k) for j in range(k)) / (k * k)
    return out


def naive_grid_nms(scores: torch.Tensor, k: int) -> list[tuple[int, int]]:
    """The authors' loop: take the max, zero it and its 8 neighbours, repeat."""
    s = scores.clone().tolist()
    picks = []
    for _ in range(k):
        best = max(
            ((r, c) for r in range(len(s)) for c in range(len(s[0]))), key=lambda p: s[p[0]][p[1]]
        )
        picks.append(best)
        for r in range(best[0] - 1, best[0] + 2):
            for c in range(best[1] - 1, best[1] + 2):
                if 0 <= r < len(s) and 0 <= c < len(s[0]):
                    s[r][c] = 0.0
    return picks


def naive_iou_nms(scores: torch.Tensor, k: int, window: int, thr: float) -> list[tuple[int, int]]:
    cells = sorted(
        (
            (float(scores[r, c]), r, c)
            for r in range(scores.shape[0])
            for c in range(scores.shape[1])
        ),
        key=lambda t: -t[0],
    )
    picks: list[tuple[int, int]] = []
    for _, r, c in cells:
        ok = True
        for pr, pc in picks:
            inter = max(0, window - abs(pr - r)) * max(0, window - abs(pc - c))
            if inter / (2 * window * window - inter) > thr:
                ok = False
        if ok:
            picks.append((r, c))
        if len(picks) == k:
            break
    return picks


def test_activation_map_is_channel_sum() -> None:
    f = torch.rand(2, 5, 7, 7)
    assert torch.allclose(activation_map(f), f.sum(1))


@pytest.mark.parametrize("window", [2, 3])
def test_window_scores_match_naive_loop(window: int) -> None:
    a = torch.rand(3, 7, 7)
    got = window_scores(a, window)
    assert got.shape == (3, 8 - window, 8 - window)
    for i in range(3):
        assert torch.allclose(got[i].double(), naive_window_scores(a[i], window), atol=1e-6)


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("window", [2, 3])
def test_grid_suppression_matches_authors_loop(seed: int, window: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(4, 7, 7, generator=gen) + 0.01  # positive, like post-ReLU features
    scores = window_scores(a, window)
    index, values = select_windows(scores, 3, suppression="grid")
    g = scores.shape[-1]
    for i in range(4):
        expected = naive_grid_nms(scores[i], 3)
        assert [(int(x) // g, int(x) % g) for x in index[i]] == expected
        assert torch.allclose(values[i], torch.tensor([float(scores[i][p]) for p in expected]))


@pytest.mark.parametrize("seed", range(10))
def test_iou_suppression_matches_naive_loop(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    scores = window_scores(torch.rand(2, 7, 7, generator=gen), 3)
    index, _ = select_windows(scores, 3, suppression="iou", window=3, iou_threshold=0.25)
    for i in range(2):
        got = [(int(x) // 5, int(x) % 5) for x in index[i]]
        assert got == naive_iou_nms(scores[i], 3, 3, 0.25)


def test_all_zero_map_still_gives_distinct_windows() -> None:
    index, _ = select_windows(torch.zeros(1, 5, 5), 3, suppression="grid")
    picks = [(int(x) // 5, int(x) % 5) for x in index[0]]
    assert len(set(picks)) == 3
    for a in picks:  # no pick is a neighbour of another
        assert all(max(abs(a[0] - b[0]), abs(a[1] - b[1])) > 1 for b in picks if b != a)


def test_central_squares() -> None:
    sizes = torch.tensor([[300, 500], [500, 300], [64, 64]])
    assert central_squares(sizes).tolist() == [
        [100, 0, 400, 300],
        [0, 100, 300, 400],
        [0, 0, 64, 64],
    ]


SIZES = {
    "square": (256, 256),
    "wide": (400, 1600),
    "tall": (1500, 300),
    "tiny": (40, 90),
    "small": (100, 150),
    "huge": (4320, 7680),
}


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize(("window", "patch"), [(3, 224), (2, 112)])
def test_boxes_inside_image_with_right_size(name: str, window: int, patch: int) -> None:
    h, w = SIZES[name]
    g = 8 - window
    index = torch.arange(g * g).unsqueeze(0)  # every window position
    boxes = windows_to_boxes(
        index, torch.tensor([[h, w]]), window=window, grid=(7, 7), patch_size=patch
    )
    side = min(patch, h, w)
    b = boxes[0]
    assert torch.equal(b, b.round())
    assert (b[:, 2] - b[:, 0] == side).all() and (b[:, 3] - b[:, 1] == side).all()
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all()
    assert (b[:, 2] <= w).all() and (b[:, 3] <= h).all()


def test_box_is_centred_on_window_in_central_square() -> None:
    # 8K image: the central square is x in [1680, 6000); the middle 3x3 window (2, 2) has its
    # centre at 3.5 / 7 = 0.5 of the square -> patch centred at (3840, 2160); window (0, 1) has
    # its centre at (2.5 / 7, 1.5 / 7) -> (1680 + 1542.86, 925.71) -> x0 = 3111, y0 = 814.
    sizes = torch.tensor([[4320, 7680]])
    index = torch.tensor([[2 * 5 + 2, 0 * 5 + 1]])
    box = windows_to_boxes(index, sizes, window=3, grid=(7, 7), patch_size=224)[0].tolist()
    assert box[0] == [3840 - 112, 2160 - 112, 3840 + 112, 2160 + 112]
    assert box[1] == [3111, 814, 3111 + 224, 814 + 224]
    # top-left 2x2 window of a 700x700 image: centre (1/7) * 700 = 100 -> box shifted to x0 = 44
    box = windows_to_boxes(
        torch.tensor([[0]]), torch.tensor([[700, 700]]), window=2, grid=(7, 7), patch_size=112
    )[0, 0].tolist()
    assert box == [44, 44, 156, 156]
    # a corner window on a 256 image is shifted to stay inside: [0, 224) or [32, 256)
    box = windows_to_boxes(
        torch.tensor([[24]]), torch.tensor([[256, 256]]), window=3, grid=(7, 7), patch_size=224
    )[0, 0].tolist()
    assert box == [32, 32, 256, 256]


def test_selection_has_no_gradient_and_six_patches() -> None:
    f = torch.rand(2, 8, 7, 7, requires_grad=True)
    sel = select_patches(f, torch.tensor([[300, 200], [50, 60]]), "psm")
    assert sel.boxes.shape == (2, 6, 4) and not sel.boxes.requires_grad
    assert sel.windows.tolist() == [[3, 3, 3, 2, 2, 2]] * 2
    assert not sel.activations.requires_grad
    scores = window_scores(f.detach().sum(1), 3).flatten(1)
    assert torch.allclose(sel.activations[:, 0], scores.max(1).values)


def test_random_and_rsz448_strategies() -> None:
    sizes = torch.tensor([[480, 640]])
    gen = torch.Generator().manual_seed(0)
    sel = select_patches(None, sizes, "random", generator=gen)
    assert sel.boxes.shape == (1, 6, 4)
    sel = select_patches(None, sizes, "rsz448")
    # central square x in [80, 560): four quadrants of 240 px and the centre one
    assert sel.boxes[0].tolist() == [
        [80, 0, 320, 240],
        [320, 0, 560, 240],
        [80, 240, 320, 480],
        [320, 240, 560, 480],
        [200, 120, 440, 360],
    ]
    assert sel.windows.tolist() == [[0] * 5]


@settings(max_examples=200, deadline=None)
@given(
    h=st.integers(32, 8192),
    w=st.integers(32, 8192),
    window=st.sampled_from([2, 3]),
    data=st.data(),
)
def test_boxes_inside_any_image(h: int, w: int, window: int, data: st.DataObject) -> None:
    g = 8 - window
    index = data.draw(st.integers(0, g * g - 1))
    patch = 224 if window == 3 else 112
    box = windows_to_boxes(
        torch.tensor([[index]]),
        torch.tensor([[h, w]]),
        window=window,
        grid=(7, 7),
        patch_size=patch,
    )[0, 0].tolist()
    side = min(patch, h, w)
    assert box[2] - box[0] == side and box[3] - box[1] == side
    assert box[0] >= 0 and box[2] <= w and box[1] >= 0 and box[3] <= h
    # the patch contains the window centre whenever it can (it is only shifted at the borders)
    s = min(h, w)
    cx = (w - s) // 2 + (index % g + window / 2) / 7 * s
    assert box[0] - 0.5 <= cx <= box[2] + 0.5
