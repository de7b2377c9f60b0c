"""Command line: python -m clstm {demo, info, bench}."""
import argparse
import sys


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m clstm",
                                     description="clstm: a CPU-optimized LSTM for Python")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.add_parser("demo", add_help=False,
                   help="train an LSTM to forecast weekly Mauna Loa CO2 (about half a minute)")
    sub.add_parser("info", help="print the build configuration (BLAS, SIMD, OpenMP, threads)")
    sub.add_parser("bench", add_help=False,
                   help="time clstm against torch and onnxruntime (those that are installed)")
    args, rest = parser.parse_known_args(argv[:1])
    rest = argv[1:]
    if args.command == "demo":
        from .demo import main as demo
        return demo(rest)
    if args.command == "bench":
        from .benchmark import main as bench
        return bench(rest, prog="python -m clstm bench")
    if args.command == "info":
        from . import show_config
        show_config()
        return 0
    parser.print_help()
    return 0 if args.command is None else 2


if __name__ == "__main__":
    sys.exit(main())
