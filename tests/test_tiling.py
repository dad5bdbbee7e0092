"""Tiled g_a and g_s agree with whole-image processing; halos come from the receptive field."""

from __future__ import annotations

import dataclasses
import itertools
from fractions import Fraction

import pytest
import torch

from hific_lit import HiFiC
from hific_lit.models.hific.arch import arch_preset
from hific_lit.nn import Encoder, Generator
from hific_lit.nn.padding import pad_to_multiple
from hific_lit.runtime.precision import set_transform_precision
from hific_lit.tiling import (
    MEMORY_SAFETY,
    MemoryBudgetError,
    NotTileableError,
    RowSource,
    Stage,
    activation_peak_bytes,
    analysis_stage,
    bytes_per_pixel,
    parse_memory_budget,
    plan_tiles,
    receptive_field,
    run_tiled,
    split_axis,
    synthesis_stages,
    tile_rows,
    tiled_analysis,
    tiled_synthesis,
)

ATOL = 1e-5
"""Float rounding only: a tile's convolutions may sum in another order than the whole image's."""


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny() -> HiFiC:
    return HiFiC.from_preset("tiny").eval()


def _budget_for(stage: Stage, shape: tuple[int, ...], tiles: int) -> int:
    """A budget that splits the longer side(s) of ``shape`` into about ``tiles`` tiles."""
    extent = []
    for length in shape[-2:]:
        core = -(-length // tiles // stage.align) * stage.align
        extent.append(min(length, core + stage.overlap))
    peak = activation_peak_bytes(stage.module, (*shape[:2], *extent), torch.float32)
    return int(MEMORY_SAFETY * peak) + 1


def test_receptive_fields_match_the_paper_layout() -> None:
    arch = dataclasses.replace(arch_preset("tiny"), residual_blocks=9)
    g_a, g_s = (
        Encoder(arch.encoder_widths, arch.latent_channels),
        Generator(arch.latent_channels, arch.generator_widths, 9),
    )
    assert receptive_field(g_a.net) == (Fraction(34), Fraction(1, 16))
    assert receptive_field(g_s.head, g_s.blocks) == (Fraction(19), Fraction(1))
    assert receptive_field(g_s.up) == (Fraction(9, 8), Fraction(16))
    stage = analysis_stage(g_a)
    assert (stage.halo, stage.halo_after, stage.align) == (48, 32, 16)  # last core latent reaches 18 px past
    assert [(s.halo, s.halo_after, s.align) for s in synthesis_stages(g_s)] == [(19, 19, 1), (2, 2, 1)]


def test_norms_with_image_statistics_run_untiled_with_a_warning() -> None:
    g_a = Encoder((4, 4, 4, 4, 4), 4, norm="instance").eval()
    with pytest.raises(NotTileableError, match="InstanceNorm"):
        analysis_stage(g_a)
    x = torch.rand(1, 3, 64, 64)
    with pytest.warns(UserWarning, match="untiled"):
        y = tiled_analysis(g_a, x, 2**20)
    with torch.no_grad():
        assert torch.equal(y, g_a(x))


@pytest.mark.parametrize("size", [(197, 175), (17, 3000), (3000, 17)])
def test_tiled_analysis_matches_whole_image(tiny: HiFiC, size: tuple[int, int]) -> None:
    x = pad_to_multiple(torch.rand(1, 3, *size)) * 2.0 - 1.0
    stage = analysis_stage(tiny.g_a)
    budget = _budget_for(stage, x.shape, 3)
    plan = plan_tiles(stage, x.shape, x.dtype, budget)
    assert plan.count > 1
    with torch.no_grad():
        whole = tiny.g_a(x)
    torch.testing.assert_close(tiled_analysis(tiny.g_a, x, budget), whole, atol=ATOL, rtol=0)


@pytest.mark.parametrize("latent", [(7, 13), (4, 188)])
def test_tiled_synthesis_matches_whole_image(tiny: HiFiC, latent: tuple[int, int]) -> None:
    y_hat = torch.round(torch.randn(1, tiny.arch.latent_channels, *latent) * 3)
    trunk, up = synthesis_stages(tiny.g_s)
    with torch.no_grad():
        h, whole = trunk.module(y_hat), tiny.g_s(y_hat)
    trunk_budget, up_budget = _budget_for(trunk, y_hat.shape, 3), _budget_for(up, h.shape, 3)
    assert plan_tiles(trunk, y_hat.shape, y_hat.dtype, trunk_budget).count > 1
    assert plan_tiles(up, h.shape, h.dtype, up_budget).count > 1
    torch.testing.assert_close(run_tiled(trunk, y_hat, trunk_budget), h, atol=ATOL, rtol=0)
    torch.testing.assert_close(tiled_synthesis(tiny.g_s, y_hat, up_budget), whole, atol=ATOL, rtol=0)


def test_per_pixel_memory_is_measured_per_weight_layout() -> None:
    """A channels_last copy (as loaded for inference) must not hand its figure to a plain model of the same shapes."""
    plain, loaded = HiFiC.from_preset("tiny").eval(), HiFiC.from_preset("tiny").eval()
    set_transform_precision(loaded.g_a, loaded.g_s, torch.float32)
    channels_last_trunk, plain_trunk = synthesis_stages(loaded.g_s)[0], synthesis_stages(plain.g_s)[0]
    bytes_per_pixel(channels_last_trunk, 1, 8, torch.float32)
    side = 8 * plain_trunk.align
    own = MEMORY_SAFETY * activation_peak_bytes(plain_trunk.module, (1, 8, side, side), torch.float32) / side**2
    assert bytes_per_pixel(plain_trunk, 1, 8, torch.float32) == own


def test_a_halo_short_of_the_receptive_field_shows_seams(tiny: HiFiC) -> None:
    x = torch.rand(1, 3, 256, 256) * 2.0 - 1.0
    stage = analysis_stage(tiny.g_a)
    budget = _budget_for(stage, x.shape, 2)
    with torch.no_grad():
        whole = tiny.g_a(x)
        short = run_tiled(dataclasses.replace(stage, halo=32), x, budget)
        short_after = run_tiled(dataclasses.replace(stage, halo_after=16), x, budget)
        exact = run_tiled(stage, x, budget)
    assert (short - whole).abs().max() > 100 * ATOL
    assert (short_after - whole).abs().max() > 100 * ATOL
    assert (exact - whole).abs().max() <= ATOL


def test_no_budget_means_one_tile_and_the_plain_network(tiny: HiFiC) -> None:
    x = torch.rand(2, 3, 256, 320)
    stage = analysis_stage(tiny.g_a)
    assert plan_tiles(stage, x.shape, x.dtype, _budget_for(stage, (2, 3, 128, 128), 1)).count > 1, "large enough"
    assert plan_tiles(stage, x.shape, x.dtype, None).count == 1
    with torch.no_grad():
        assert torch.equal(tiled_analysis(tiny.g_a, x, None), tiny.g_a(x))


def test_chosen_tiles_fit_the_budget(tiny: HiFiC) -> None:
    x = torch.rand(1, 3, 1024, 768)
    stage = analysis_stage(tiny.g_a)
    for budget in (2**21, 2**23):
        plan = plan_tiles(stage, x.shape, x.dtype, budget)
        tallest = max(r1 - r0 for r0, r1 in plan.rows) + stage.overlap
        widest = max(c1 - c0 for c0, c1 in plan.cols) + stage.overlap
        assert activation_peak_bytes(tiny.g_a, (1, 3, tallest, widest), x.dtype) <= budget
    assert plan_tiles(stage, x.shape, x.dtype, 2**21).count > plan_tiles(stage, x.shape, x.dtype, 2**23).count


def test_activation_peak_grows_with_area_and_batch(tiny: HiFiC) -> None:
    small = activation_peak_bytes(tiny.g_a, (1, 3, 64, 64), torch.float32)
    assert small > 64 * 64 * 4 * tiny.arch.encoder_widths[0]  # at least one full-resolution activation
    assert activation_peak_bytes(tiny.g_a, (1, 3, 128, 128), torch.float32) == pytest.approx(4 * small, rel=0.01)
    assert activation_peak_bytes(tiny.g_a, (2, 3, 64, 64), torch.float32) == pytest.approx(2 * small, rel=0.01)


def test_too_small_a_budget_is_a_clear_error(tiny: HiFiC) -> None:
    x = torch.rand(1, 3, 256, 256)
    with pytest.raises(MemoryBudgetError, match="too small: the smallest tile of g_a needs"):
        tiled_analysis(tiny.g_a, x, 1000)


@pytest.mark.parametrize(("length", "parts", "align"), [(320, 4, 16), (320, 3, 16), (13, 4, 1), (5, 1, 1)])
def test_split_axis_covers_the_axis_with_aligned_equal_cores(length: int, parts: int, align: int) -> None:
    cuts = split_axis(length, parts, align)
    assert len(cuts) == parts and cuts[0][0] == 0 and cuts[-1][1] == length
    assert all(a % align == 0 for a, _ in cuts)
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(cuts))
    sizes = [b - a for a, b in cuts]
    assert max(sizes) - min(sizes) <= align


def test_plan_computes_the_fewest_pixels(tiny: HiFiC) -> None:
    stage = analysis_stage(tiny.g_a)
    x = torch.rand(1, 3, 512, 512)
    half = _budget_for(stage, (1, 3, 512, 256 + stage.halo), 1)  # fits a 512 x (256 + halo) stripe
    plan = plan_tiles(stage, x.shape, x.dtype, half)
    assert (len(plan.rows), len(plan.cols)) in ((1, 2), (2, 1))  # two stripes, not four quarters
    wide = plan_tiles(stage, torch.Size((1, 3, 64, 3008)), x.dtype, half)
    assert len(wide.rows) == 1 and len(wide.cols) > 1


@pytest.mark.parametrize(("text", "size"), [("512M", 512 * 2**20), ("2GiB", 2 * 2**30), ("none", None), ("Off", None)])
def test_parse_memory_budget(text: str, size: int | None) -> None:
    assert parse_memory_budget(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "5X"])
def test_parse_memory_budget_rejects_nonsense(text: str) -> None:
    with pytest.raises(MemoryBudgetError, match="memory budget"):
        parse_memory_budget(text)


def test_port_layers_tile_exactly() -> None:
    """The JT port's g_a (reflect pads (0, 1, 1, 0) before its stride-2 convs, input mapped to [-1, 1])."""
    arch = dataclasses.replace(arch_preset("tiny"), encoder_stride_pad="jt", image_range="tanh", padding="reflect")
    g_a = HiFiC(arch).eval().g_a
    stage = analysis_stage(g_a)
    x = pad_to_multiple(torch.rand(1, 3, 197, 175))
    budget = _budget_for(stage, x.shape, 3)
    assert plan_tiles(stage, x.shape, x.dtype, budget).count > 1
    with torch.no_grad():
        whole = g_a(x)
    torch.testing.assert_close(tiled_analysis(g_a, x, budget), whole, atol=ATOL, rtol=0)


def test_the_trunk_output_is_made_by_rows_of_tiles_as_the_upsampling_reaches_them(tiny: HiFiC) -> None:
    """The same tiles, so the same bits, as running the trunk to its whole output first; never more than about one
    row of the trunk's tiles held."""
    y_hat = torch.round(torch.randn(1, tiny.arch.latent_channels, 40, 9) * 3)
    trunk, up = synthesis_stages(tiny.g_s, uint8=True)
    trunk_budget, up_budget = _budget_for(trunk, y_hat.shape, 4), 1200 * 2**10
    trunk_plan = plan_tiles(trunk, y_hat.shape, y_hat.dtype, trunk_budget)
    assert len(trunk_plan.rows) >= 3
    h = run_tiled(trunk, y_hat, trunk_budget)
    bands = list(tile_rows(trunk, y_hat, trunk_budget))
    assert [(r0, r1) for r0, r1, _ in bands] == trunk_plan.rows
    assert torch.equal(torch.cat([band for _, _, band in bands], dim=-2), h)
    up_plan = plan_tiles(up, h.shape, h.dtype, up_budget)
    assert len(up_plan.rows) > len(trunk_plan.rows) and len(up_plan.cols) > 1

    source = RowSource.of_stage(trunk, y_hat, trunk_budget)
    held = []
    window = source.window
    source.window = lambda r, c: (held.append(sum(b.shape[-2] for _, _, b in source._held)), window(r, c))[1]
    assert torch.equal(run_tiled(up, source, up_budget), run_tiled(up, h, up_budget))
    largest = max(r1 - r0 for r0, r1 in trunk_plan.rows)
    assert max(held) <= largest + 2 * up.overlap < h.shape[-2]
    whole = run_tiled(up, run_tiled(trunk, y_hat, up_budget), up_budget)
    assert torch.equal(tiled_synthesis(tiny.g_s, y_hat, up_budget, uint8=True), whole)
