"""`edgeshadow train`: learn each device's normal behaviour into `model` rules of its config."""
from host_tools.output import add_json_arg, emit, say


def register(sub):
    p = sub.add_parser(
        "train", help="learn a device's normal behaviour (model rules) from recorded samples",
        description="Fit, from recorded normal operation (the replay input format), a small model of "
                    "each device's normal behaviour: temperature from current squared through the "
                    "conductor's thermal lag, humidity (ambient) and the time of day; voltage from current "
                    "and the time of day. Writes the config with `model` rules (replacing any it had): "
                    "one file, or one <thing>.json per thing in an --output folder when the input holds "
                    "several things. The device never learns on its own: what is normal changes only "
                    "by training again (and sending the new config or rules as a shadow delta).")
    p.add_argument("--config", required=True, metavar="C.json", help="the device config to extend")
    p.add_argument("--input", required=True, metavar="NOMINAL.jsonl", help="recorded normal operation")
    p.add_argument("--output", required=True, metavar="TRAINED.json",
                   help="the trained config (a folder when the input holds several things)")
    p.add_argument("--thing", help="train only this thing of the input")
    add_json_arg(p, "the summary (per thing: output file, model sizes, fit per metric)")
    p.set_defaults(func=do_train)


def do_train(args):
    from host_tools.model import train as lib
    results = lib.train(args.config, args.input, args.output, thing=args.thing, progress=say)

    def text():
        for r in results:
            print(f"{r['thing']}: {r['output']} (model {r['model_bytes']} bytes; rules as a shadow delta "
                  f"{r['delta_bytes']} bytes of AWS's 8192)")
            for m in r["models"]:
                lag = f", thermal lag {m['tau_s']} s" if m["tau_s"] else ""
                print(f"  {m['metric']}: rms residual {m['rms']:.3g} over {m['samples']} samples{lag}; "
                      f"alerts at a mean shift of {m['shift_sd']:.2f} sd, roughness {m['rough']}, "
                      f"{m['frozen']} unchanged samples")
    emit(args, results, text)
    return 0
