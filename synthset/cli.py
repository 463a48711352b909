"""The `synthset` command line.

Exit codes: 0 success, 1 a run failed, 2 a usage error (bad manifest, unknown dataset or
version, bad arguments), always with one line that says what is wrong.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from synthset.errors import SynthsetError

EXIT_FAILED = 1
EXIT_USAGE = 2


def _fail(message: str, code: int) -> int:
    print(f"synthset: error: {message}", file=sys.stderr)
    return code


def cmd_validate(args: argparse.Namespace) -> int:
    from synthset.generators.base import generator_class
    from synthset.manifest import load_manifest
    from synthset.plan import plan_size

    manifest = load_manifest(args.manifest)
    generator_class(manifest.generator.kind).check(manifest.generator)
    images, shards = plan_size(manifest)
    g = manifest.generator
    print(
        f"ok: {args.manifest}: dataset '{manifest.dataset}', {len(manifest.items)} items, "
        f"{images} images in {shards} shards; model {g.model} "
        f"({g.pipeline}), {g.steps} steps, scheduler {g.scheduler or 'model default'}"
    )
    return 0


def _ui_links(result: dict, tracking_uri: str | None) -> list[str]:
    from prefect.settings import PREFECT_API_URL, PREFECT_UI_URL

    links = []
    ui = PREFECT_UI_URL.value() or (PREFECT_API_URL.value() or "").removesuffix("/api")
    if ui and result.get("flow_run_id"):
        links.append(f"Prefect UI:  {ui.rstrip('/')}/runs/flow-run/{result['flow_run_id']}")
    from synthset.storage.versioning import run_url

    if url := run_url(result["mlflow_run_id"], tracking_uri):
        links.append(f"MLflow UI:   {url}")
    else:
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "default store"
        links.append(f"MLflow:      {uri} (run {result['mlflow_run_id']})")
    return links


class _Bar:
    """The CLI's progress bar as a run observer."""

    def __init__(self, quiet: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=None, unit="img", desc="generating", disable=quiet)

    def __getattr__(self, name: str):
        return lambda *args: None

    def resuming(self, resume: object) -> None:
        self.bar.write(f"synthset: {resume.describe()}", file=sys.stderr)

    def waiting(self, holder: dict) -> None:
        self.bar.write(
            f"synthset: another run of this manifest (pid {holder.get('pid')} on "
            f"{holder.get('host')}) is in progress; waiting for it to finish",
            file=sys.stderr,
        )

    def progress(self, done: int, total: int) -> None:
        self.bar.total = total
        self.bar.update(done - self.bar.n)


def _run(args: argparse.Namespace, bar: _Bar) -> dict:
    manifest = str(Path(args.manifest).resolve())
    options = {
        "datasets_root": args.datasets_root,
        "tracking_uri": args.tracking_uri,
        "force": args.force,
        "fail_on_shortfall": args.fail_on_shortfall,
    }
    if args.shards_per_gpu is not None:
        options["shards_per_gpu"] = args.shards_per_gpu
    if args.runner == "local":
        from synthset.pipeline import run_dataset
        from synthset.runners.local import LocalRunner

        return run_dataset(manifest, LocalRunner(), observers=[bar], **options).summary()
    from prefect.settings import PREFECT_API_URL

    from synthset.flows.generate import OBSERVERS, run_flow
    from synthset.runners.ray import RaySettings

    if not PREFECT_API_URL.value():
        print(
            "synthset: PREFECT_API_URL is not set; Prefect will use a temporary server "
            "(start one with `make servers`)",
            file=sys.stderr,
        )
    OBSERVERS.append(bar)
    try:
        return run_flow(manifest, args.runner, RaySettings(args.address), **options)
    finally:
        OBSERVERS.remove(bar)


def cmd_run(args: argparse.Namespace) -> int:
    from synthset.manifest import load_manifest
    from synthset.runners.gpu import GpuSlots
    from synthset.servers import require_reachable

    load_manifest(args.manifest)
    require_reachable(args.tracking_uri)
    if args.address and args.runner != "ray":
        raise SynthsetError("--address is the Ray cluster's; use it with --runner ray")
    if args.shards_per_gpu is not None and args.runner == "local":
        raise SynthsetError(
            "--shards-per-gpu is a Prefect concurrency limit; not with --runner local"
        )
    GpuSlots(args.shards_per_gpu)
    bar = _Bar(args.quiet)
    try:
        result = _run(args, bar)
    except SynthsetError:
        raise
    except Exception as exc:
        return _fail(f"run failed: {type(exc).__name__}: {exc}", EXIT_FAILED)
    finally:
        bar.bar.close()
    if result.get("unchanged"):
        print(
            f"unchanged:   the result equals {result['name']}@v{result['version']}; nothing "
            "new was published (--force publishes a copy)"
        )
    print(f"dataset:     {result['name']}")
    print(
        f"version:     v{result['version']}  ({result['images']} images, "
        f"{result['rejected']} rejected, {result['seconds']:.1f} s)"
    )
    by_reason = result.get("rejected_by_reason") or {}
    if by_reason:
        print("rejected:    " + ", ".join(f"{k} {v}" for k, v in by_reason.items()))
    for s in result.get("shortfall", []):
        print(
            f"synthset: warning: items[{s['item']}] {s['prompt']!r}: {s['kept']} of "
            f"{s['count']} kept after {s['attempted']} images (budget {s['budget']})",
            file=sys.stderr,
        )
    print(f"folder:      {result['path']}")
    print(f"digest:      {result['digest']}")
    for line in _ui_links(result, args.tracking_uri):
        print(line)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from prefect.settings import PREFECT_API_URL

    from synthset.flows.serve import serve, serve_deployment

    deployment = serve_deployment(
        args.manifest,
        args.cron,
        args.timezone,
        args.name,
        datasets_root=args.datasets_root,
        tracking_uri=args.tracking_uri,
        shards_per_gpu=args.shards_per_gpu,
    )
    if not PREFECT_API_URL.value():
        print(
            "synthset: PREFECT_API_URL is not set; the schedule lives in a temporary server "
            "that ends with this process",
            file=sys.stderr,
        )
    serve(deployment)
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from synthset.storage.versioning import list_datasets, list_versions

    names = [args.name] if args.name else list_datasets(args.tracking_uri)
    if not names:
        print("no datasets yet; `synthset run MANIFEST` makes one")
        return 0
    print(
        f"{'dataset':<24} {'version':>7} {'images':>7}  {'created (UTC)':<19}  "
        f"{'digest':<23}  aliases"
    )
    for name in names:
        for v in list_versions(name, args.tracking_uri):
            print(
                f"{name:<24} {'v' + str(v.version):>7} {v.images:>7}  "
                f"{v.created:%Y-%m-%d %H:%M:%S}  {v.digest[:23]:<23}  {', '.join(v.aliases)}"
            )
    return 0


def cmd_tag(args: argparse.Namespace) -> int:
    from synthset.storage.versioning import parse_ref, set_alias

    name, ref = parse_ref(args.ref)
    if ref is None:
        raise SynthsetError(f"{args.ref!r}: give the version to tag, as NAME@VERSION")
    info = set_alias(name, ref, args.alias, args.tracking_uri)
    print(f"{name}@{args.alias} -> v{info.version} ({info.digest})")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from synthset.storage.pull import pull
    from synthset.storage.versioning import parse_ref

    name, ref = parse_ref(args.ref)
    pulled = pull(name, ref, tracking_uri=args.tracking_uri, to=args.to)
    print(f"{pulled.name}@v{pulled.version} ({pulled.digest}, verified) in {pulled.path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    import json

    from synthset.layout import datasets_root
    from synthset.quality.locate import locate
    from synthset.quality.render import LABELS, fmt
    from synthset.quality.report import JSON, quality_report

    root = Path(args.datasets_root).resolve() if args.datasets_root else datasets_root()
    folder, previous, problem = locate(args.ref, root, args.tracking_uri)
    path = quality_report(
        folder, args.reference, previous, tracking_uri=args.tracking_uri, previous_problem=problem
    )
    document = json.loads((path.parent / JSON).read_text())
    for key, value in document["headline"].items():
        print(f"{LABELS.get(key, key):<40} {fmt(value)}")
    if "unavailable" in document["fidelity"]:
        print(f"synthset: {document['fidelity']['unavailable']}", file=sys.stderr)
    print(f"report:      {path}")
    return 0


def cmd_servers(args: argparse.Namespace) -> int:
    from synthset.servers import stack

    if args.action == "start":
        lines = stack.start_all(args.database)
    elif args.action == "stop":
        lines = stack.stop_all()
    else:
        lines = stack.status_all()
    for line in lines:
        print(f"{line.name:<8} {line.address:<30} {line.status}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    import json
    import logging

    from synthset.models.build import WEIGHTS, build_default
    from synthset.models.quality import measure, report

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    out = Path(args.out) if args.out else WEIGHTS
    timings = build_default(out, seed=args.seed, threads=args.threads)
    print(json.dumps(timings, indent=2, default=str))
    print(report(measure(out)))
    return 0


def _add_shards_per_gpu(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shards-per-gpu",
        type=int,
        default=None,
        help="shards (of all flow runs) that may share one GPU: the Prefect concurrency limit "
        "synthset-gpu-<uuid> (default: keep an existing limit, else 1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthset", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        return p

    tracking = argparse.ArgumentParser(add_help=False)
    tracking.add_argument(
        "--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI)"
    )

    p = add("validate", cmd_validate, "check a manifest without generating anything")
    p.add_argument("manifest")
    p = add("run", cmd_run, "generate, publish and version the dataset of a manifest")
    p.add_argument("manifest")
    p.add_argument(
        "--datasets-root",
        default=None,
        help="folder of datasets (default: $SYNTHSET_DATASETS or ./datasets)",
    )
    p.add_argument("--tracking-uri", default=None)
    p.add_argument(
        "--runner",
        choices=["prefect", "local", "ray"],
        default="prefect",
        help="prefect: a Prefect flow, shards one at a time in this process (default); "
        "local: no Prefect; ray: a Prefect flow with shards on a Ray cluster",
    )
    p.add_argument(
        "--address",
        default=None,
        help="with --runner ray: the cluster's HOST:PORT or ray://HOST:PORT; "
        "auto (default) for the cluster of this machine or a new local one",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="publish even when the result equals the latest version (default: keep that one)",
    )
    p.add_argument(
        "--fail-on-shortfall",
        action="store_true",
        help="fail the run, publishing nothing, when items stay short of their counts",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _add_shards_per_gpu(p)
    p = sub.add_parser(
        "serve",
        help="run a manifest on a cron schedule from this process (no work pool)",
        description="register a Prefect deployment of the manifest with a cron schedule and run "
        "its flow runs here until interrupted",
    )
    p.set_defaults(func=cmd_serve)
    p.add_argument("manifest")
    p.add_argument("--cron", required=True, help='cron expression, e.g. "0 3 * * *"')
    p.add_argument("--timezone", default="UTC", help="IANA time zone of --cron (default: UTC)")
    p.add_argument("--name", default=None, help="deployment name (default: the dataset's)")
    p.add_argument("--datasets-root", default=None)
    p.add_argument("--tracking-uri", default=None)
    _add_shards_per_gpu(p)
    p = sub.add_parser("ls", parents=[tracking], help="list datasets, versions, digests, aliases")
    p.set_defaults(func=cmd_ls)
    p.add_argument("name", nargs="?")
    p = sub.add_parser("tag", parents=[tracking], help="point an alias at a version")
    p.set_defaults(func=cmd_tag)
    p.add_argument("ref", metavar="NAME@VERSION")
    p.add_argument("alias")
    p = sub.add_parser("pull", parents=[tracking], help="download and verify a version")
    p.set_defaults(func=cmd_pull)
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]")
    p.add_argument("--to", default=None, help="target folder (default: the synthset cache)")
    p = sub.add_parser("report", parents=[tracking], help="(re)build a version's quality report")
    p.set_defaults(func=cmd_report)
    p.add_argument("ref", metavar="NAME[@VERSION|@ALIAS]|FOLDER")
    p.add_argument(
        "--reference",
        default=None,
        help="real images to measure fidelity against: synthset/digits, a folder of images or "
        "an imagefolder, or NAME@VERSION (default: the version manifest's report.reference)",
    )
    p.add_argument("--datasets-root", default=None)
    p = add("models", cmd_models, "build the embedded default models from scratch")
    p.add_argument("action", choices=["build-default"])
    p.add_argument("--out", default=None, help="folder for the weights (default: the package's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p = add("servers", cmd_servers, "start, stop or check the local Prefect and MLflow servers")
    p.add_argument("action", choices=["start", "stop", "status"])
    p.add_argument(
        "--database",
        choices=["sqlite", "postgres"],
        default=None,
        help="with start: where both keep their data; postgres is a private cluster in the "
        "state folder (default: $SYNTHSET_DATABASE or sqlite)",
    )
    from synthset.privacy.tabular.cli import add_tabular_parser

    add_tabular_parser(sub)
    from synthset.privacy.medical.cli import add_medical_parser

    add_medical_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except SynthsetError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted; finished shards stay in staging and a re-run resumes", 130)


if __name__ == "__main__":
    sys.exit(main())
