import torch

from training.data.artifacts import ArtifactAugment


def _film() -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, 96), torch.linspace(0, 1, 96), indexing="ij")
    return (0.3 + 0.4 * x * y)[None]


def _lungs() -> torch.Tensor:
    mask = torch.zeros(1, 96, 96, dtype=torch.bool)
    mask[:, 20:80, 15:45] = mask[:, 20:80, 52:82] = True
    return mask


def test_marks_are_drawn_and_the_film_stays_a_grey_image_in_range():
    augment = ArtifactAugment(p=1.0, seed=0)
    film = _film()
    out, mask = augment(film, None)
    assert out.shape == film.shape and out.dtype == torch.float32 and mask is None
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert (out - film).abs().gt(0.2).float().mean() > 0.01  # something was drawn


def test_a_crop_or_border_moves_the_lung_mask_with_the_film():
    for seed in range(8):
        augment = ArtifactAugment(p=0.0, seed=seed)
        lungs = _lungs()
        # A film that is its own lung mask: wherever the film's bright cells go, the mask goes.
        moved, mask = augment.reframe(0.1 + 0.7 * lungs.float(), lungs)
        assert mask.dtype == torch.bool and mask.shape == lungs.shape
        assert mask.any() and mask.sum() != lungs.sum()
        bright = (moved > 0.6) & (moved < 0.95)  # lungs (0.8), not a grey or white border
        overlap = (bright & mask).sum() / (bright | mask).sum()
        assert overlap > 0.9, (seed, overlap)


def test_the_same_seed_draws_the_same_marks():
    a, _ = ArtifactAugment(p=0.5, seed=3)(_film())
    b, _ = ArtifactAugment(p=0.5, seed=3)(_film())
    c, _ = ArtifactAugment(p=0.5, seed=4)(_film())
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_processing_keeps_black_and_white_and_the_order_of_greys():
    augment = ArtifactAugment(seed=1)
    ramp = torch.linspace(0, 1, 64).repeat(64, 1)[None]
    for _ in range(6):
        out = augment.process(ramp)
        assert out.shape == ramp.shape and out.min() >= 0 and out.max() <= 1
        row = out[0, 32]
        assert row[-1] > row[0]
