"""``volstream compile``: trace and compile the worker's programs into the compile cache."""

from __future__ import annotations


def add_parser(sub) -> None:
    comp = sub.add_parser(
        "compile",
        help="compile the worker's programs into the compile cache (the install runs it)",
        description="Trace and compile every program a worker warms (SABR batches of each "
        "VOLSTREAM_WARM_BATCHES size, the Heston surfaces, the runbook's steps unless "
        "VOLSTREAM_WARM_RUNBOOK=0, the tolerance checks) into the compile cache ($VOLSTREAM_JAX_CACHE, default "
        "~/.volstream/jax-cache). Workers and the demo on this machine then load them in "
        "seconds instead of tracing and compiling for minutes. `make` runs it once when it "
        "creates .venv/; a program traced by other engine code or another JAX is not loaded, "
        "so it compiles again after an upgrade (a stamp in the cache says what it compiled for: "
        "a second run for the same engine, JAX and settings returns at once).",
    )
    comp.add_argument("--force", action="store_true",
                      help="compile even what the cache's stamp says is there")  # fmt: skip
    comp.set_defaults(func=cmd_compile)


def cmd_compile(args) -> int:
    from streams.settings import Settings
    from streams.worker.run import compile_programs

    print("compiling the worker's solver programs for this machine (once; minutes on 2 cores)")
    compile_programs(
        Settings.from_env(), say=lambda line: print(line, flush=True), force=args.force
    )
    return 0
