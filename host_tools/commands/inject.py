"""`edgeshadow inject --port PORT --thing THING [...]`: certificates and identity onto boards."""
from pathlib import Path

from host_tools import CERTS_DIR
from host_tools.errors import EdgeshadowError
from host_tools.output import NoProgress, Progress, add_json_arg, emit, say


def register(sub):
    p = sub.add_parser("inject", help="write a thing's certificates (DER) and config to a board",
                       description="Check certs/<thing>/ (as `certs check`), convert to DER and write "
                                   "/certs/device.der, /certs/device.key.der, /certs/root-ca.der and "
                                   "/config.json (thing, endpoint) atomically, verified by SHA-256 read-back; "
                                   "the config is checked first (the firmware's validator and the board "
                                   "check). Then soft-reset the board and wait for its application to "
                                   "announce that it runs with the new config. Repeat --port/--thing "
                                   "for a bench of boards. Exit code 0 only when every board runs it.")
    p.add_argument("--port", action="append", required=True, metavar="PORT",
                   help="serial port of a board (repeat, paired in order with --thing)")
    p.add_argument("--thing", action="append", required=True, metavar="THING",
                   help="thing name whose certificates go to that board")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="device config to merge into (default: the board's current /config.json)")
    p.add_argument("--root-ca", type=Path, metavar="FILE",
                   help="root CA to use (default: certs/<thing>/root-ca.crt)")
    p.add_argument("--ota-key", type=Path, metavar="PUB",
                   help="also write the update-signing public key (from `edgeshadow ota keygen`) "
                        "to /certs/ota.pub")
    p.add_argument("--local-broker", nargs="?", const="auto", type=Path, metavar="BROKER.json",
                   help="connect the board to the running local broker (`edgeshadow broker` or the demo): "
                        "its address from BROKER.json (default: run/broker/broker.json, else the newest "
                        "run/**/broker.json) goes into the board's mqtt.endpoint and mqtt.port")
    p.add_argument("--check-connect", action="store_true",
                   help="then have the board open a TLS connection to its endpoint and report it")
    p.add_argument("--certs-dir", type=Path, default=CERTS_DIR, metavar="DIR",
                   help=f"certificate folder (default: {CERTS_DIR})")
    add_json_arg(p, "the result per board")
    p.set_defaults(func=do_inject)


def do_inject(args):
    from host_tools.device import inject as lib   # cryptography: imported by the command that needs it
    from host_tools.device.ports import resolve_port  # --port auto
    args.port = [resolve_port(p) for p in args.port]
    if len(args.port) != len(args.thing):
        raise EdgeshadowError(f"{len(args.port)} --port but {len(args.thing)} --thing; give them in pairs")
    pairs = list(zip(args.port, args.thing))
    endpoint = _local_broker(args.local_broker) if args.local_broker else None
    say(f"checking the certificates and config of {len(pairs)} board(s) ...")
    with Progress("injecting", total=len(pairs), unit="boards") if len(pairs) > 1 else NoProgress() as bar:
        results = lib.inject_boards(pairs, args.certs_dir, config=args.config, root_ca=args.root_ca,
                                    connect=args.check_connect, ota_key=args.ota_key, progress=say,
                                    on_board=lambda r: bar.advance(1, r.thing), endpoint=endpoint)
    failed = sum(1 for r in results if not r.ok)
    doc = {"ok": not failed, "boards": [r.as_dict() for r in results]}

    def text():
        for r in results:
            print(f"{r.thing} -> {r.port}: {'ok' if r.ok else 'FAILED'}: {r.detail}"
                  + (f"; {r.connect}" if r.connect else ""))
        if failed and len(results) > 1:
            print(f"{failed} of {len(results)} boards failed")
    emit(args, doc, text)
    codes = {r.exit_code for r in results if not r.ok}
    return 0 if not codes else 3 if codes == {3} else 1   # 3: no board answered at all




def _local_broker(state):
    """{"endpoint", "port"} of the running local broker, from its broker.json."""
    import json
    from host_tools.commands.monitor import newest_state_file
    path = newest_state_file() if str(state) == "auto" else state
    if path is None:
        raise EdgeshadowError("--local-broker: no local broker found (no run/broker/broker.json)",
                              hint="start one with `edgeshadow broker &`, or run `make demo`", exit_code=3)
    try:
        info = json.loads(Path(path).read_text())
        return {"endpoint": info["host"], "port": int(info["port"])}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EdgeshadowError(f"--local-broker {path}: not a broker state file ({e})")
