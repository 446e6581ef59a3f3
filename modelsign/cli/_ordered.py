"""A typer command that remembers the command-line order of its options.

Options that come in pairs (``--identity`` with ``--issuer``, ``--parent-identity`` with
``--parent-issuer``) are paired by position, which click does not keep across different options.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperCommand

ORDER_KEY = "modelsign.option_order"


class OrderedCommand(TyperCommand):
    """Stores the parameter names in command-line order in ``ctx.meta[ORDER_KEY]``."""

    # ``Any``: typer vendors its own click, whose Context type is private to typer.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not ctx.resilient_parsing:
            try:
                _, _, order = self.make_parser(ctx).parse_args(args=list(args))
                ctx.meta[ORDER_KEY] = [p.name for p in order]
            except Exception:  # noqa: BLE001 - the real parse below reports the same error
                pass
        result: list[str] = super().parse_args(ctx, args)
        return result
