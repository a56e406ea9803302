"""Compare the four techniques on the digits data from Python and print the key columns.

Run: .venv/bin/python examples/compare_from_python.py
"""

from __future__ import annotations

import compress


def main() -> None:
    frame = compress.compare(
        "digits",
        ["baseline", "quantize-int8", "prune-magnitude", "distill", "student-scratch", "finetune"],
        seed=0,
        epochs=10,
    )
    columns = ["strategy", "status", "size_bytes", "size_gzip_bytes", "latency_us_p50", "accuracy"]
    print(frame[columns].to_string(index=False))
    print(f"report: {frame.attrs['run_dir']}/report.md")


if __name__ == "__main__":
    main()
