"""Vendor the Kubeflow TFJob CRD (spec/crds/kubeflow.org_tfjobs.v1.9.0.json) from its YAML.

    python tools/vendor_tfjob_crd.py YAML [--out spec/crds/kubeflow.org_tfjobs.v1.9.0.json]
                                          [--check]

YAML is `manifests/base/crds/kubeflow.org_tfjobs.yaml` of kubeflow/training-operator at
tag v1.9.0 (Apache-2.0), e.g. from a clone:
`git -C training-operator show v1.9.0:manifests/base/crds/kubeflow.org_tfjobs.yaml`, or
https://raw.githubusercontent.com/kubeflow/training-operator/v1.9.0/manifests/base/crds/kubeflow.org_tfjobs.yaml

The CRD is stored as JSON, content unchanged, so that `tfspec launch --emit tfjob` checks
its manifests with jsonschema alone (a core dependency) and the core install needs no
YAML library; this tool is dev-time only (PyYAML comes with the `ray` extra's Ray).
`--check` converts in memory and exits 1 when the file on disk differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "spec" / "crds" / "kubeflow.org_tfjobs.v1.9.0.json"


def convert(text: str) -> str:
    """The CRD's YAML as indented JSON (one document; the YAML may start with `---`)."""
    import yaml  # dev-time only

    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    if len(documents) != 1 or documents[0].get("kind") != "CustomResourceDefinition":
        raise SystemExit("expected one CustomResourceDefinition document")
    crd = documents[0]
    if crd["metadata"]["name"] != "tfjobs.kubeflow.org":
        raise SystemExit(f"not the TFJob CRD: {crd['metadata']['name']}")
    return json.dumps(crd, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("yaml", metavar="YAML", help="kubeflow.org_tfjobs.yaml at v1.9.0")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the vendored file differs from the YAML's")
    args = parser.parse_args(argv)
    text = convert(Path(args.yaml).read_text(encoding="utf-8"))
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'differs'}")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
