"""``volstream simulate``: send synthetic FX and equity ticks, paced or as a load generator."""

from __future__ import annotations

import argparse
import time

from streams.cli.connect import add_batch_flag, kafka_flags, settings_of


def add_parser(sub) -> None:
    sim = sub.add_parser(
        "simulate",
        help="send synthetic ticks: FX smiles (SABR vols) and equity indices (Heston prices)",
        description="Send synthetic ticks: FX smiles quoting SABR vols and equity indices "
        "quoting Heston prices, every option first, then random re-quotes (the model plus "
        "noise inside the bid-ask) while forwards, spots and ATM vols random-walk in event "
        "time (--forward-vol, --spot-vol, --vol-vol: the tick rate changes how often a smile "
        "is quoted, not how fast it moves), with optional vol jumps (--jump-every, --jump-bp). "
        "Paced by event time (--rate, --duration), or as fast as the broker takes them (--max).",
        epilog="examples:\n"
        "  volstream simulate --rate 500 --duration 30       a live-looking stream\n"
        "  volstream simulate --max 1000000 --expiries 84 --indices 5 --rate 50000\n"
        "                                                    load: 504 smiles, 5 surfaces\n"
        "  volstream simulate --rate 500 --jump-every 30     a 20-60 bp vol jump every 30 s",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument(
        "--rate", type=float, default=200.0, help="ticks per second of event time (default 200)"
    )
    sim.add_argument(
        "--duration", type=float, default=60.0, help="seconds to send, paced (default 60)"
    )
    sim.add_argument(
        "--max",
        type=int,
        metavar="N",
        help="send N ticks (after the opening quotes) as fast as the broker takes them, "
        "unpaced: a load generator (event times still --rate apart)",
    )
    sim.add_argument("--pairs", type=int, default=3, help="currency pairs, 0-6 (default 3)")
    sim.add_argument(
        "--expiries",
        type=int,
        default=4,
        help="expiries per pair: 4 (1m, 3m, 6m, 1y; the default) or that many weekly ones",
    )
    sim.add_argument(
        "--indices",
        type=int,
        default=1,
        help="equity indices, 0-5: SPX, SX5E, NDX, NKY, UKX (default 1)",
    )
    sim.add_argument(
        "--forward-vol",
        type=float,
        default=0.08,
        metavar="VOL",
        help="annualised lognormal vol of the FX forwards, per year of event time "
        "(default 0.08: 8%%/yr)",
    )
    sim.add_argument(
        "--spot-vol",
        type=float,
        default=0.20,
        metavar="VOL",
        help="annualised lognormal vol of the index spots (default 0.20: 20%%/yr)",
    )
    sim.add_argument(
        "--vol-vol",
        type=float,
        default=0.9,
        metavar="VOL",
        help="annualised lognormal vol of the ATM vol levels, SABR alpha and Heston "
        "sqrt(v0) (default 0.9: 90%%/yr)",
    )
    sim.add_argument(
        "--jump-every",
        type=float,
        metavar="SECONDS",
        help="a vol jump every SECONDS of event time: one random pair or index has every "
        "expiry's ATM vol moved at once (default: no jumps)",
    )
    sim.add_argument(
        "--jump-bp",
        type=float,
        nargs=2,
        default=(20.0, 60.0),
        metavar=("LOW", "HIGH"),
        help="jump sizes, uniform in LOW..HIGH vol basis points (1 bp = 0.0001 vol, i.e. "
        "0.01 vol point), random sign (default 20 60)",
    )
    sim.add_argument("--seed", type=int, default=5)
    kafka_flags(sim)
    add_batch_flag(sim)
    sim.add_argument("--quiet", action="store_true", help="no progress line")
    sim.set_defaults(func=cmd_simulate)


def cmd_simulate(args) -> int:
    import asyncio

    from streams.feed.send import send_columns
    from streams.feed.simulate import TENOR_DAYS, TickSimulator

    settings = settings_of(args)
    settings.use_compile_cache()
    start = time.time()
    weekly = tuple(range(7, 7 * args.expiries + 1, 7))  # many smiles for load
    sim = TickSimulator(
        pairs=args.pairs,
        indices=args.indices,
        seed=args.seed,
        tenors=TENOR_DAYS if args.expiries == len(TENOR_DAYS) else weekly,
        index_tenors=TENOR_DAYS,
        forward_vol=args.forward_vol,
        spot_vol=args.spot_vol,
        vol_vol=args.vol_vol,
        jump_every=args.jump_every,
        jump_bp=tuple(args.jump_bp),
    )
    if args.max is not None:  # as fast as the broker takes them, event times at --rate
        chunks, due, total = sim.columns(start, args.rate, count=args.max, chunk=8192), None, None
    else:  # paced: each tick leaves at its event time, for --duration seconds
        chunks = _until(sim.columns(start, args.rate, chunk=256), start + args.duration)
        due, total = (lambda ts: ts - start), None
    summary = asyncio.run(
        send_columns(
            chunks, settings, due=due, batch=args.batch, progress=not args.quiet, total=total
        )
    )
    failed = f"; {summary.failed:,} FAILED to send" if summary.failed else ""
    rate = summary.sent / max(summary.seconds, 1e-9)
    print(
        f"sent {summary.sent:,} simulated ticks to {settings.topics['quotes']} in "
        f"{summary.seconds:.1f} s ({rate:,.0f} ticks/s){failed}"
    )
    return 1 if summary.failed else 0


def _until(chunks, end: float):
    """The rows of ``chunks`` with event times up to ``end``."""
    for chunk in chunks:
        keep = chunk.numbers["ts"] <= end
        if keep.all():
            yield chunk
            continue
        if keep.any():
            yield chunk.take(keep)
        return
