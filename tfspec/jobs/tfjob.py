"""`tfspec launch FILE --emit tfjob`: a Kubeflow TFJob (kubeflow.org/v1) that trains a spec.

Two documents: a ConfigMap holding the resolved spec (params with their `--set`
values), and a TFJob whose every replica runs `tfspec run` on it in an image that has
tfspec installed. The training operator (v1.9) makes one pod and one headless service
per replica and sets each pod's TF_CONFIG (docs/cluster.md).

Layout of every replica's container:
    /workspace                  the volume `--storage` names (a PersistentVolumeClaim;
                                else the image's own folder): the spec's files (data,
                                modules) as beside it locally, and the run directory
                                runs/<spec name>/<job name>/
    /workspace/<spec>.tfspec    the ConfigMap's spec, mounted over the volume (subPath),
                                so relative paths in it start at /workspace

Nothing is written before the manifest passes the CRD's OpenAPI v3 schema (vendored
in spec/crds/) and the operator's admission rules (its validating webhook).
"""

from __future__ import annotations

import copy
import json
import re
import sys
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from ..lang.files import write_atomic
from ..lang.formatter import format_spec
from ..lang.resources import data_path
from . import yamltext

CRD_FILE = "kubeflow.org_tfjobs.v1.9.0.json"
API_VERSION = "kubeflow.org/v1"
CONTAINER = "tensorflow"  # the operator sets TF_CONFIG in the container of this name
PORT_NAME, PORT = "tfjob-port", 2222  # the operator's defaults (TFJobDefaultPort…)
WORKSPACE = "/workspace"
RESTART_POLICY = "OnFailure"  # a replica that fails restarts: the run resumes
BACKOFF_LIMIT = 3  # restarts before the job is failed
# Kubernetes' DNS label rules (apimachinery validation) and their messages
DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
DNS1035_MESSAGE = ("a DNS-1035 label must consist of lower case alphanumeric characters or "
                   "'-', start with an alphabetic character, and end with an alphanumeric "
                   "character (e.g. 'my-name',  or 'abc-123', regex used for validation is "
                   "'[a-z]([-a-z0-9]*[a-z0-9])?')")
DNS1123 = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(rf"{DNS1123.pattern}(\.{DNS1123.pattern})*")
CONFIGMAP_KEY = re.compile(r"[-._a-zA-Z0-9]+")
CONFIGMAP_MAX_BYTES = 1024 * 1024  # etcd's limit on one object, roughly


def job_name(spec_name: str, workers: int) -> str:
    """A DNS-1035 job name from the spec's name, short enough that every replica's
    service name `<job>-worker-<i>` is a DNS label too (63 characters)."""
    name = re.sub(r"[^a-z0-9-]+", "-", spec_name.lower()).strip("-")
    if not name[:1].isalpha():
        name = f"tfspec-{name}".rstrip("-")
    room = 63 - len(f"-worker-{max(workers - 1, 0)}")
    return name[:room].rstrip("-")


def build(spec_text: str, spec_file: str, spec_name: str, *, image: str, workers: int,
          name: str, namespace: str = "default", cpus: str | None = None,
          memory: str | None = None, gpus: int | None = None, storage: str | None = None,
          allow_modules: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The ConfigMap and the TFJob (as dicts): one Chief and `workers - 1` Workers
    (under MultiWorkerMirroredStrategy the chief is a worker that also writes)."""
    configmap = f"{name}-spec"
    spec_path = f"{WORKSPACE}/{spec_file}"
    command = ["tfspec", "run", spec_path, "--run-dir", f"{WORKSPACE}/runs/{spec_name}/{name}"]
    for module in allow_modules:
        command += ["--allow-module", module]
    resources: dict[str, dict[str, Any]] = {}
    for key, value in (("cpu", cpus), ("memory", memory)):
        if value is not None:  # requests = limits: the pods get what they ask for
            resources.setdefault("requests", {})[key] = str(value)
            resources.setdefault("limits", {})[key] = str(value)
    if gpus:
        resources.setdefault("limits", {})["nvidia.com/gpu"] = str(gpus)
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": image,
        "command": command,
        "workingDir": WORKSPACE,
        "env": [{"name": "PYTHONUNBUFFERED", "value": "1"}],
        "ports": [{"name": PORT_NAME, "containerPort": PORT}],
        "volumeMounts": [
            {"name": "spec", "mountPath": spec_path, "subPath": spec_file, "readOnly": True},
        ],
    }
    if resources:
        container["resources"] = resources
    volumes: list[dict[str, Any]] = [{"name": "spec", "configMap": {"name": configmap}}]
    if storage:  # else /workspace is the image's own
        container["volumeMounts"].insert(0, {"name": "workspace", "mountPath": WORKSPACE})
        volumes.insert(0, {"name": "workspace", "persistentVolumeClaim": {"claimName": storage}})

    def replica(count: int) -> dict[str, Any]:
        return {
            "replicas": count,
            "restartPolicy": RESTART_POLICY,
            "template": {"spec": {"containers": [copy.deepcopy(container)],
                                  "volumes": copy.deepcopy(volumes)}},
        }

    replicas = {"Chief": replica(1)}
    if workers > 1:
        replicas["Worker"] = replica(workers - 1)
    labels = {"app.kubernetes.io/name": "tfspec", "app.kubernetes.io/instance": name}
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": configmap, "namespace": namespace, "labels": labels},
            "data": {spec_file: spec_text},
        },
        {
            "apiVersion": API_VERSION,
            "kind": "TFJob",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": {
                "runPolicy": {"backoffLimit": BACKOFF_LIMIT, "cleanPodPolicy": "None"},
                "tfReplicaSpecs": replicas,
            },
        },
    ]


# -- checks -------------------------------------------------------------------------------


@cache
def tfjob_schema() -> dict[str, Any]:
    """The vendored CRD's openAPIV3Schema for v1, made checkable by jsonschema as the
    API server checks it (`structural`)."""
    crd = json.loads(data_path("crds", CRD_FILE).read_text(encoding="utf-8"))
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return structural(version["schema"]["openAPIV3Schema"])


def structural(schema: Any) -> Any:
    """A Kubernetes structural schema as plain JSON Schema: an object's unknown fields
    are errors (kubectl's `--validate=strict`, its default), unless the schema says
    `x-kubernetes-preserve-unknown-fields`; `x-kubernetes-int-or-string` accepts an
    integer or a string (kept as the `anyOf` controller-gen writes beside it). CEL
    rules (`x-kubernetes-validations`) compare with the object's old version, which a
    new object has none of: not checked."""
    if isinstance(schema, list):
        return [structural(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: structural(v) for k, v in schema.items()
           if k not in ("description", "x-kubernetes-validations")}
    if out.get("x-kubernetes-int-or-string") and "anyOf" not in out:
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
        out.pop("type", None)
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


def field_path(path: Any) -> str:
    """`spec.tfReplicaSpecs.Worker.template.spec.containers[0].image`, as kubectl says."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<the object>"


def check(docs: list[dict[str, Any]]) -> list[str]:
    """Every problem of the manifests, one line each (empty: they would be admitted)."""
    problems: list[str] = []
    for doc in docs:
        kind = doc.get("kind")
        if kind == "ConfigMap":
            problems += _configmap_problems(doc)
        elif kind == "TFJob":
            problems += [f"TFJob: {p}" for p in schema_problems(doc) + admission_problems(doc)]
        else:
            problems.append(f"{kind}: not a kind tfspec writes")
    return problems


def schema_problems(tfjob: dict[str, Any]) -> list[str]:
    """The TFJob against the CRD's openAPIV3Schema."""
    validator = jsonschema.Draft4Validator(tfjob_schema())
    errors = sorted(validator.iter_errors(tfjob), key=lambda e: list(e.absolute_path))
    return [f"{field_path(e.absolute_path)}: {e.message}" for e in errors]


def admission_problems(tfjob: dict[str, Any]) -> list[str]:
    """The training operator's validating webhook (v1.9.0,
    pkg/webhooks/tensorflow/tfjob_webhook.go: validateTFJob), and what the API server
    and the operator's services need of names."""
    problems = []
    if tfjob.get("apiVersion") != API_VERSION:
        problems.append(f"apiVersion: Unsupported value: {tfjob.get('apiVersion')!r}: "
                        f"supported values: {API_VERSION!r}")
    metadata = _dict(tfjob.get("metadata"))
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        problems.append("metadata.name: Required value: name or generateName is required")
    else:
        problems += _dns1035("metadata.name", name)
    problems += _namespace_problems(metadata)
    replicas = _dict(_dict(tfjob.get("spec")).get("tfReplicaSpecs"))
    if not replicas:
        return problems + ["spec.tfReplicaSpecs: Required value: must be required"]
    chiefs = 0
    for rtype, rspec in replicas.items():
        # a wrong type is the schema's error; here it counts as missing
        at = f"spec.tfReplicaSpecs[{rtype}].template.spec.containers"
        containers = _dict(_dict(_dict(rspec).get("template")).get("spec")).get("containers")
        containers = [c for c in containers if isinstance(c, dict)] \
            if isinstance(containers, list) else []
        if not containers:
            problems.append(f"{at}: Required value: must be specified")
        if rtype in ("Chief", "Master"):
            chiefs += 1
        for index, container in enumerate(containers):
            if not container.get("image"):
                problems.append(f"{at}[{index}].image: Required value: must be required")
        if not any(c.get("name") == CONTAINER for c in containers):
            problems.append(f"{at}: Required value: must have at least one container with "
                            f"name {CONTAINER}")
        if isinstance(name, str) and DNS1035.fullmatch(name):
            # each replica's pod and headless service is `<job>-<type>-<index>`
            count = _dict(rspec).get("replicas", 1)
            count = count if isinstance(count, int) else 1
            last = f"{name}-{str(rtype).lower()}-{max(count - 1, 0)}"
            if len(last) > 63:
                problems.append(f"metadata.name: Invalid value: {name!r}: the service name "
                                f"{last!r} must be no more than 63 characters")
    if chiefs > 1:
        problems.append("spec.tfReplicaSpecs: Forbidden: must not have more than 1 Chief or "
                        "Master role")
    return problems


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dns1035(at: str, value: str) -> list[str]:
    problems = []
    if len(value) > 63:
        problems.append(f"{at}: Invalid value: {value!r}: must be no more than 63 characters")
    if not DNS1035.fullmatch(value):
        problems.append(f"{at}: Invalid value: {value!r}: {DNS1035_MESSAGE}")
    return problems


def _namespace_problems(metadata: dict[str, Any]) -> list[str]:
    namespace = metadata.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or len(namespace) > 63
                                  or not DNS1123.fullmatch(namespace)):
        return [f"metadata.namespace: Invalid value: {namespace!r}: a lowercase RFC 1123 "
                "label must consist of lower case alphanumeric characters or '-', and must "
                "start and end with an alphanumeric character"]
    return []


def _configmap_problems(doc: dict[str, Any]) -> list[str]:
    problems = []
    metadata = _dict(doc.get("metadata"))
    name = metadata.get("name")
    if not isinstance(name, str) or len(name) > 253 or not DNS1123_SUBDOMAIN.fullmatch(name):
        problems.append(f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 "
                        "subdomain must consist of lower case alphanumeric characters, '-' "
                        "or '.', and must start and end with an alphanumeric character")
    problems += _namespace_problems(metadata)
    data = _dict(doc.get("data"))
    for key in data:
        if not CONFIGMAP_KEY.fullmatch(key) or len(key) > 253:
            problems.append(f"data[{key}]: Invalid value: {key!r}: a valid config key must "
                            "consist of alphanumeric characters, '-', '_' or '.'")
    size = sum(len(k) + len(str(v).encode("utf-8")) for k, v in data.items())
    if size > CONFIGMAP_MAX_BYTES:
        problems.append(f"data: Too long: must have at most {CONFIGMAP_MAX_BYTES} bytes")
    return [f"ConfigMap: {p}" for p in problems]


# -- the command --------------------------------------------------------------------------


def emit(spec: str, *, image: str, workers: int, sets: list[str],
         allow_modules: list[str], namespace: str = "default", cpus: str | None = None,
         memory: str | None = None, gpus: int | None = None, storage: str | None = None,
         name: str | None = None, output: str | None = None) -> int:
    """Check the spec, build the manifests, check them, write them (`output`, atomically,
    or stdout). Raises SpecError for the spec's errors; returns the exit status."""
    from .launch import multi_worker_spec

    result = multi_worker_spec(spec, sets, allow_modules)
    if workers < 1:
        print("tfspec: error: --workers must be at least 1", file=sys.stderr)
        return 1
    ir = copy.deepcopy(result.ir or {})
    if ir.get("params"):  # the `--set` values become the params' own, as in a run's copy
        ir["params"] = {**ir["params"], **result.overrides}
    spec_name = ir.get("name") or ir["model"]["name"]
    text = format_spec(ir)
    if result.overrides:  # the values are in the params; say where they came from
        given = " ".join(f"--set {pair}" for pair in sets)
        text = f"# {Path(spec).name} with {given} (tfspec launch --emit tfjob)\n" + text
    docs = build(text, Path(spec).stem + ".tfspec", spec_name, image=image, workers=workers,
                 name=name or job_name(spec_name, workers), namespace=namespace, cpus=cpus,
                 memory=memory, gpus=gpus, storage=storage,
                 allow_modules=tuple(allow_modules))
    problems = check(docs)
    if problems:
        hint = ("\n  hint: --name sets the job's name"
                if any("metadata.name" in p for p in problems) else "")
        print("tfspec: error: the TFJob manifest would be rejected (nothing written):\n  "
              + "\n  ".join(problems) + hint, file=sys.stderr)
        return 1
    out = yamltext.documents(docs)
    if output:
        write_atomic(output, out)
        print(f"wrote {output}: ConfigMap {docs[0]['metadata']['name']} and TFJob "
              f"{docs[1]['metadata']['name']} ({workers} replicas); "
              f"kubectl apply -f {output}", file=sys.stderr)
    else:
        sys.stdout.write(out)
    if not storage:
        print("tfspec: note: without --storage, /workspace is the image's own: the spec's "
              "files must be in the image, and the run directory is lost with the chief's "
              "pod; --storage PVC mounts a PersistentVolumeClaim there", file=sys.stderr)
    return 0

