"""Forward+backward time of MONAI's bending energy / diffusion loss vs monai_reg_ext's (same values) on this CPU.

``monai_reg_ext.losses.BendingEnergyLoss`` and ``GradientNormLoss`` apply MONAI's stencils with a hand-written
adjoint (``monai_reg_ext/losses/_stencil.py``); MONAI's ``BendingEnergyLoss`` and ``DiffusionLoss`` slice the field
once per stencil point and let autograd allocate a zero field per slice in the backward pass. Each loss is timed as an
optimiser calls it: ``loss(ddf).backward()`` on a random DDF ``(1, 3, *size)``; median of ``--repeats`` calls after
``--warmup`` untimed ones, on ``--threads`` intra-op threads; the values and gradients are compared as well.

Example::

    python scripts/bench_regularisers.py --size 88 104 88 --threads 1
"""

from __future__ import annotations

import argparse
import warnings

from bench_lncc import time_loss  # the same timing loop (scripts/ is on sys.path when a script runs)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark, print a Markdown table and return its rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[88, 104, 88], help="DDF shape (2 or 3 numbers)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)

    import torch
    from monai.losses import BendingEnergyLoss as MonaiBending
    from monai.losses import DiffusionLoss

    from monai_reg_ext.losses import BendingEnergyLoss, GradientNormLoss

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ndim = len(args.size)
    ddf = (torch.randn(1, ndim, *args.size) * 0.5).requires_grad_(True)
    rows = []
    warnings.filterwarnings("ignore", message="Using a non-tuple sequence")  # MONAI 1.6.1 indexing on torch >= 2.8
    for name, ours, reference in (
        ("bending energy", BendingEnergyLoss(), MonaiBending()),
        ("gradient norm (L2) / MONAI DiffusionLoss", GradientNormLoss(), DiffusionLoss()),
    ):
        t_ref = time_loss(lambda x, _, f=reference: f(x), ddf, None, args.warmup, args.repeats)
        t_ours = time_loss(lambda x, _, f=ours: f(x), ddf, None, args.warmup, args.repeats)
        field = ddf.detach()
        (g_ours,) = torch.autograd.grad(ours(ddf), ddf)
        (g_ref,) = torch.autograd.grad(reference(ddf), ddf)
        rows.append(
            {
                "loss": name,
                "monai_s": t_ref,
                "monai_reg_ext_s": t_ours,
                "speedup": t_ref / t_ours,
                "value_rel_diff": abs(float(ours(field) - reference(field))) / abs(float(reference(field))),
                "grad_max_rel_diff": float((g_ours - g_ref).abs().max() / g_ref.abs().max()),
            }
        )
    print(f"DDF {tuple(ddf.shape)}, {args.threads} thread(s), median of {args.repeats} forward+backward calls\n")
    print("| loss | MONAI s | monai_reg_ext s | speed-up | value rel. diff | gradient max rel. diff |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['loss']} | {r['monai_s']:.4f} | {r['monai_reg_ext_s']:.4f} | {r['speedup']:.1f}x | "
            f"{r['value_rel_diff']:.1e} | {r['grad_max_rel_diff']:.1e} |"
        )
    return rows


if __name__ == "__main__":
    main()
