"""Command line: python -m clstm {info}."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m clstm",
                                     description="clstm: a CPU-optimized LSTM for Python")
    sub = parser.add_subparsers(dest="command", metavar="command")
    sub.add_parser("info", help="print the build configuration (BLAS, SIMD, OpenMP, threads)")
    args = parser.parse_args(argv)
    if args.command == "info":
        from . import show_config
        show_config()
        return 0
    parser.print_help()
    return 0 if args.command is None else 2


if __name__ == "__main__":
    sys.exit(main())
